"""The VM side of `make vagrant-test`: Vagrant (vagrant-libvirt, vagrant/Vagrantfile) and plain
ssh into its nodes. Runs commands and copies files; knows nothing of Kubernetes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
VAGRANT_DIR = TOP / "vagrant"
CACHE = Path(os.environ.get("PYK_VAGRANT_CACHE", Path.home() / ".cache/pykubelet/vagrant"))
SUBNET = "198.18.1"
HOST_IP = f"{SUBNET}.254"


class VmError(RuntimeError):
    """A VM step failed; the message names the node and the command."""


def node_ip(name: str) -> str:
    """worker-i's address on the pykubelet network (vagrant/Vagrantfile: 198.18.1.(10+i))."""
    return f"{SUBNET}.{10 + int(name.rsplit('-', 1)[1])}"


@dataclass
class Vagrant:
    """vagrant-libvirt driven with our Vagrantfile; env carries the PYK_* settings."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    ssh_config: Path | None = None

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "VAGRANT_CWD": str(VAGRANT_DIR),
            "VAGRANT_HOME": str(CACHE / "home"),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
            **self.env,
        }

    def run(self, *args: str, log: str, timeout: float = 3600) -> None:
        """`vagrant ARGS`, output to workdir/<log>.log; raises with the log's tail on failure."""
        path = self.workdir / f"{log}.log"
        with path.open("ab") as out:
            r = subprocess.run(
                ["vagrant", *args],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if r.returncode != 0:
            tail = path.read_text(errors="replace")[-1500:]
            raise VmError(f"vagrant {' '.join(args)} exited {r.returncode}; {path}:\n{tail}")
        self.ssh_config = None

    def _config(self) -> Path:
        if self.ssh_config is None:
            r = subprocess.run(
                ["vagrant", "ssh-config"],
                env=self._env(),
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            if r.returncode != 0:
                raise VmError(f"vagrant ssh-config: {r.stderr.strip()[-800:]}")
            self.ssh_config = self.workdir / "ssh_config"
            self.ssh_config.write_text(r.stdout)
        return self.ssh_config

    def _ssh_base(self) -> list[str]:
        return ["-F", str(self._config()), "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"]

    def sh(
        self, node: str, script: str, *, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `script` with bash as root on `node`; output captured."""
        cmd = ["ssh", *self._ssh_base(), node, "sudo bash -c " + shlex.quote(script)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise VmError(
                f"{node}: `{script[:200]}` exited {r.returncode}: "
                f"{(r.stderr.strip() or r.stdout.strip())[-1200:]}"
            )
        return r

    def copy(self, node: str, files: Sequence[Path], dest: str) -> None:
        """scp files to /tmp on the node, then move them to `dest` as root."""
        names = " ".join(shlex.quote(f.name) for f in files)
        cmd = ["scp", "-q", *self._ssh_base(), *map(str, files), f"{node}:/tmp/"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if r.returncode != 0:
            raise VmError(f"{node}: scp {names}: {r.stderr.strip()[-800:]}")
        self.sh(node, f"mkdir -p {shlex.quote(dest)} && cd /tmp && mv {names} {shlex.quote(dest)}/")

    def put(self, node: str, path: str, content: str, mode: str = "0644") -> None:
        """Write `content` to `path` on the node (as root)."""
        quoted = shlex.quote(content)
        self.sh(
            node,
            f"mkdir -p $(dirname {path}) && printf %s {quoted} > {path} && chmod {mode} {path}",
        )


def wait_for(what: str, probe: object, timeout: float, every: float = 3) -> object:
    """Call probe() until it returns something truthy; raise VmError naming `what` on timeout."""
    assert callable(probe)
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (VmError, subprocess.SubprocessError, OSError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    raise VmError(f"{what}: not within {timeout:.0f}s (last: {str(last)[-400:]})")


def script_env(values: Mapping[str, str]) -> str:
    """`export K=V` lines for a remote script."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())
