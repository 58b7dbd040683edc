"""`make vagrant-test`: pykubelet as the kubelet of real Debian 12 VMs under systemd, joined to
the host's control plane with the real `kubeadm join`, checked as a user would, then everything
removed again. Prints a table of every step and check; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cluster import images
from cluster import up as cluster
from cluster.spec import DEFAULT_CACHE, ClusterSpec
from tests.vagrant import checks
from tests.vagrant.kube import control_plane
from tests.vagrant.vm import HOST_IP, TOP, VAGRANT_DIR, Vagrant

GOBUILD = TOP / "cluster" / "gobuild" / "build.sh"


@dataclass
class Row:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def step(self, name: str, fn: Callable[[], str | None], *, fatal: bool = True) -> bool:
        """Run one step or check, time it and record the outcome; a fatal failure stops the run
        (the cleanup still happens)."""
        print(f"[vagrant-test] {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:
            detail = f"{type(e).__name__}: {e}"
            ok = False
            if os.environ.get("PYK_VAGRANT_TRACE"):
                traceback.print_exc()
        row = Row(name, ok, time.monotonic() - t0, detail)
        self.rows.append(row)
        print(f"[vagrant-test] {'ok  ' if ok else 'FAIL'} {name} ({row.seconds:.0f}s) {detail}")
        if not ok and fatal:
            raise Aborted(name)
        return ok

    def table(self) -> str:
        width = max((len(r.name) for r in self.rows), default=10)
        lines = [f"{'step / check':<{width}}  result  seconds  detail"]
        for r in self.rows:
            res = "ok" if r.ok else "FAIL"
            lines.append(f"{r.name:<{width}}  {res:<6}  {r.seconds:7.0f}  {r.detail[:150]}")
        passed = sum(r.ok for r in self.rows)
        lines.append(f"vagrant-test: {passed} passed, {len(self.rows) - passed} failed")
        return "\n".join(lines)


class Aborted(Exception):
    """A step the rest depends on failed."""


def _sh(*cmd: str, timeout: float = 3600) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()[-1000:]}")
    return r.stdout


@dataclass
class Run:
    """One run's state: where things are, what was started (so cleanup knows what to undo)."""

    work: Path
    workers: int
    proxy_mode: str
    report: Report = field(default_factory=Report)
    spec: ClusterSpec | None = None
    vagrant: Vagrant | None = None
    wheel: Path | None = None
    kubeadm: Path | None = None
    archives: list[images.ImageArchive] = field(default_factory=list)
    host_ready: bool = False

    @property
    def nodes(self) -> list[str]:
        return [f"worker-{i}" for i in range(1, self.workers + 1)]

    # ---- artifacts and the host ------------------------------------------------------------
    def artifacts(self) -> str:
        wheel_dir = self.work / "wheel"
        _sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(TOP))
        self.wheel = next(wheel_dir.glob("pykubelet-*.whl"))
        _sh("bash", str(GOBUILD), "kubeadm", "crictl")
        paths = dict(kv.split("=", 1) for kv in _sh("bash", str(GOBUILD), "paths").split())
        self.kubeadm = Path(paths["K8S_BIN"]) / "kubeadm"
        crictl = Path(paths["CRICTL_BIN"]) / "crictl"
        extra = self.work / "bin"
        extra.mkdir(exist_ok=True)
        shutil.copy2(crictl, extra / "crictl")
        self.archives = images.build_images(DEFAULT_CACHE / "images")
        return f"{self.wheel.name}, kubeadm, crictl, {len(self.archives)} images"

    def host(self) -> str:
        _sh("bash", str(VAGRANT_DIR / "host" / "setup.sh"))
        self.host_ready = True
        _sh("bash", str(VAGRANT_DIR / "box" / "build.sh"), timeout=5400)
        return "libvirt network pykubelet on pykvbr0, box ready"

    def cluster(self) -> str:
        self.spec = control_plane(self.work / "cluster", HOST_IP)
        return f"apiserver {self.spec.server}, advertised on {HOST_IP}"

    def vagrant_up(self) -> str:
        assert self.wheel is not None and self.kubeadm is not None
        self.vagrant = Vagrant(
            self.work,
            env={
                "PYK_WORKERS": str(self.workers),
                "PYK_WHEEL": str(self.wheel),
                "PYK_KUBEADM": str(self.kubeadm),
            },
        )
        self.vagrant.run("up", "--provider=libvirt", log="vagrant-up", timeout=3600)
        return ", ".join(self.nodes)

    # ---- cleanup ----------------------------------------------------------------------------
    def cleanup(self) -> None:
        if self.vagrant is not None:
            self.report.step("vagrant destroy", self._destroy, fatal=False)
        if self.spec is not None:
            self.report.step("control plane down", self._down, fatal=False)
        if self.host_ready:
            self.report.step(
                "host teardown",
                lambda: _sh("bash", str(VAGRANT_DIR / "host" / "teardown.sh")).strip()[-150:],
                fatal=False,
            )
        self.report.step("host left as it was", checks.host_clean, fatal=False)

    def _down(self) -> str:
        assert self.spec is not None
        cluster.down(self.spec.directory)
        return ""

    def _destroy(self) -> str:
        assert self.vagrant is not None
        self.vagrant.run("destroy", "-f", log="vagrant-destroy", timeout=900)
        return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make vagrant-test", description=__doc__)
    p.add_argument("--workers", type=int, default=int(os.environ.get("PYK_WORKERS", "2")))
    p.add_argument("--proxy-mode", default="ipvs", choices=("ipvs", "iptables", "nftables"))
    p.add_argument("--keep", action="store_true", help="leave VMs and cluster up (no cleanup)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("make vagrant-test: needs root (libvirt, bridges)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="pykubelet-vagrant-test."))
    run = Run(work, args.workers, args.proxy_mode)
    t0 = time.monotonic()
    try:
        rep = run.report
        rep.step("artifacts (wheel, kubeadm, crictl, images)", run.artifacts)
        rep.step("host (libvirt network) and box", run.host)
        rep.step("control plane on the host (joinable)", run.cluster)
        rep.step("vagrant up", run.vagrant_up)
        checks.all_checks(run)
    except Aborted as e:
        print(f"[vagrant-test] stopping after the failed step: {e}")
    except KeyboardInterrupt:
        print("[vagrant-test] interrupted")
    finally:
        if args.keep:
            print(f"[vagrant-test] --keep: left up; logs and ssh config in {work}")
        else:
            run.cleanup()
    wall = time.monotonic() - t0
    print()
    print(run.report.table())
    print(f"wall time {wall / 60:.1f} min; logs in {work}")
    return 0 if all(r.ok for r in run.report.rows) else 1
