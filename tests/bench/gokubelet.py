"""The real Go kubelet (v1.36, built by gobuild/build.sh node) as a second node of a bench cluster,
on the cluster's own containerd. Benchmarks only: pykubelet never depends on this module.

What it takes to run it on the build machines (see /work/shared/ENVIRONMENT.md), and why:
- `failCgroupV1: false`: the hierarchies are cgroup v1, which kubelet >= 1.35 refuses by default.
- `cgroupDriver: cgroupfs`: PID 1 is not systemd, and containerd 1.6 lacks the RuntimeConfig RPC
  from which kubelet 1.36 would otherwise learn the driver.
- `cgroupRoot: /pykbench-go`, created here beforehand in every mounted v1 hierarchy (the kubelet
  refuses a cgroupRoot that does not exist) and removed afterwards: its kubepods/besteffort/pod*
  tree then cannot collide with another kubelet's `/kubepods` on this shared machine.
- `failSwapOn: false` (defensive; the machine has no swap today).
- The kubelet writes vm.overcommit_memory, vm.panic_on_oom, kernel.panic, kernel.panic_on_oops and
  kernel.keys.root_max* at start (protectKernelDefaults=false); `KernelTunables` saves them before
  the start and restores them after the stop, so the benchmark leaves the host as it found it.
- It cannot lower its own oom_score_adj to -999 (no CAP_SYS_RESOURCE); `oomScoreAdj: 0` in the
  config keeps it from trying (it only logged the failure, but the log stays clean).
- Its own --root-dir, --cert-dir (self-signed serving cert), podLogsDir and volumePluginDir
  live under the cluster directory; its API server listens on 127.0.0.1 on free ports.
- Harmless errors it logs here, left as they are: "Failed to set rlimit on max file handles:
  operation not permitted" (no CAP_SYS_RESOURCE), "RuntimeConfig ... Unimplemented" (containerd
  1.6), "Failed to ensure process in container with oom score: failed to find pid namespace of
  init process".
- It bind-mounts its --root-dir onto itself (to make it rshared) and leaves that mount when it
  stops; `cluster.down` unmounts everything under the cluster directory.
- It removes the sandboxes of deleted pods only in its container GC pass (once a minute), so
  "gone from CRI" takes up to ~60 s after the pods are gone from the API (pykubelet: ~0.1 s).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cluster import hostops, process
from cluster import up as cluster
from cluster.spec import ClusterSpec

CGROUP_ROOT = "pykbench-go"
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


def node_ip() -> str:
    """The address pykubelet would report (its documented detection rule), else loopback.

    Imported at run time (importlib): the agent module pulls in the whole node agent, which is
    type-checked by the project's own `mypy` run, not by the benchmark's.
    """
    try:
        agent = importlib.import_module("kubelet.agent")
        return str(agent.detect_node_ips()[0])
    except Exception:
        return "127.0.0.1"


def kubelet_binary(spec: ClusterSpec) -> Path:
    return spec.binaries.k8s("kubelet")


@dataclass(frozen=True)
class GoKubelet:
    spec: ClusterSpec
    node: str
    port: int
    healthz_port: int
    ip: str = field(default_factory=node_ip)

    @property
    def root(self) -> Path:
        return self.spec.directory / "nodes" / self.node

    @property
    def daemon(self) -> process.Daemon:
        return cluster.daemon(self.spec, f"kubelet-{self.node}")

    def config(self) -> str:
        s = self.spec
        return (
            "apiVersion: kubelet.config.k8s.io/v1beta1\n"
            "kind: KubeletConfiguration\n"
            f"containerRuntimeEndpoint: unix://{s.containerd_socket}\n"
            "failCgroupV1: false\n"
            "cgroupDriver: cgroupfs\n"
            f"cgroupRoot: /{CGROUP_ROOT}\n"
            "failSwapOn: false\n"
            "oomScoreAdj: 0\n"
            "address: 127.0.0.1\n"
            f"port: {self.port}\n"
            "healthzBindAddress: 127.0.0.1\n"
            f"healthzPort: {self.healthz_port}\n"
            "readOnlyPort: 0\n"
            "authentication:\n"
            "  anonymous:\n"
            "    enabled: false\n"
            "  webhook:\n"
            "    enabled: true\n"
            "  x509:\n"
            f"    clientCAFile: {s.pki / 'client-ca.crt'}\n"
            "authorization:\n"
            "  mode: Webhook\n"
            f"podLogsDir: {self.root / 'pod-logs'}\n"
            f"volumePluginDir: {self.root / 'volume-plugins'}\n"
            "clusterDomain: cluster.local\n"
            "resolvConf: /etc/resolv.conf\n"
        )

    def command(self, config: Path) -> list[str]:
        return [
            str(kubelet_binary(self.spec)),
            f"--config={config}",
            f"--kubeconfig={self.spec.kubeconfig('node-' + self.node)}",
            f"--hostname-override={self.node}",
            f"--node-ip={self.ip}",
            f"--root-dir={self.root / 'root'}",
            f"--cert-dir={self.root / 'pki'}",
        ]

    def start(self, *, timeout: float = 120.0) -> float:
        """Start the kubelet and wait until its Node is Ready; returns seconds waited."""
        binary = kubelet_binary(self.spec)
        if not binary.exists():
            raise process.ComponentFailed(
                f"{binary} missing; run: bash cluster/gobuild/build.sh node"
            )
        for sub in ("root", "pki", "pod-logs", "volume-plugins"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        make_cgroup_root()
        config = self.root / "kubelet-config.yaml"
        config.write_text(self.config())
        d = self.daemon
        process.start(d, self.command(config))
        return process.wait_ready(
            d, lambda: cluster.node_ready(self.spec, self.node), timeout=timeout
        )

    def stop(self) -> bool:
        return process.stop(self.daemon, grace=15)


# ---- cgroup root ---------------------------------------------------------------------------
def v1_hierarchies(*, with_unified: bool = False) -> list[Path]:
    """Mount points of the cgroup v1 hierarchies (one per controller set, plus name=systemd);
    with `with_unified`, also the cgroup2 mount of a hybrid host (/sys/fs/cgroup/unified here),
    in which the kubelet's libcontainer mirrors the tree it makes."""
    types = ("cgroup", "cgroup2") if with_unified else ("cgroup",)
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] in types:
                out.append(Path(parts[1]))
    return out


def make_cgroup_root() -> None:
    for h in v1_hierarchies():
        d = h / CGROUP_ROOT
        d.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset children start empty
            if (h / knob).exists() and not (d / knob).read_text().strip():
                (d / knob).write_text((h / knob).read_text())


def remove_cgroup_root() -> list[str]:
    """rmdir the whole /pykbench-go tree, deepest first; returns what could not be removed."""
    left = []
    for h in v1_hierarchies(with_unified=True):
        root = h / CGROUP_ROOT
        if not root.is_dir():
            continue
        dirs = sorted(
            (Path(p) for p, _, _ in os.walk(root)), key=lambda p: len(p.parts), reverse=True
        )
        for d in dirs:
            try:
                d.rmdir()
            except OSError as e:
                left.append(f"{d}: {e.strerror}")
    return left


# ---- kernel tunables -----------------------------------------------------------------------
class KernelTunables:
    """Saves the sysctls the kubelet rewrites at start-up; `restore()` puts them back."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}
        for name in SYSCTLS:
            with contextlib.suppress(OSError):
                self.saved[name] = Path("/proc/sys", name).read_text().strip()

    def changed(self) -> dict[str, tuple[str, str]]:
        out = {}
        for name, old in self.saved.items():
            with contextlib.suppress(OSError):
                now = Path("/proc/sys", name).read_text().strip()
                if now != old:
                    out[name] = (old, now)
        return out

    def restore(self) -> dict[str, tuple[str, str]]:
        changed = self.changed()
        for name, (old, _) in changed.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", name).write_text(old + "\n")
        return changed


@contextlib.contextmanager
def running(kubelet: GoKubelet) -> Iterator[float]:
    """The Go kubelet running and Ready for the duration; host tunables and cgroups restored."""
    tunables = KernelTunables()
    try:
        yield kubelet.start()
    finally:
        kubelet.stop()
        tunables.restore()
        remove_cgroup_root()
        remove_kubelet_chains()


def remove_kubelet_chains() -> int:
    """The iptables chains the Go kubelet makes at start (KUBE-FIREWALL, KUBE-KUBELET-CANARY,
    KUBE-IPTABLES-HINT); no kube-proxy runs in the bench, so every KUBE-* chain is its."""
    return sum(hostops.delete_chains(table, "KUBE-") for table in ("filter", "nat", "mangle"))
