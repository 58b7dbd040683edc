"""The cgroup manager on a cgroupfs-shaped tree: kubepods and tiers, pod cgroups per QoS class,
removal of pods that are gone only once their processes are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubelet.cgroups.manager import CgroupManager
from kubelet.cgroups.planner import Resources
from kubelet.cgroups.v1 import V1Writer


def _pod(uid: str, cpu: str | None = None, limits: bool = False) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if cpu:
        amounts = {"cpu": cpu, "memory": "16Mi"}
        res = {"requests": amounts, **({"limits": amounts} if limits else {})}
    return {"metadata": {"uid": uid}, "spec": {"containers": [{"name": "c", "resources": res}]}}


def _manager(tmp_path: Path) -> CgroupManager:
    mounts = {c: tmp_path / c for c in ("cpu", "memory")}
    for m in mounts.values():
        m.mkdir()
    return CgroupManager(V1Writer(mounts), cgroup_root="/pykt1", pod_pids_limit=50)


G, B, E = "g" * 8 + "-1", "b" * 8 + "-2", "e" * 8 + "-3"


def test_setup_and_pods_land_in_their_tiers(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    m.setup(Resources(cpu_shares=2048, memory_limit=1 << 30), [_pod(B, "500m")])
    cpu = tmp_path / "cpu" / "pykt1" / "kubepods"
    assert (cpu / "cpu.shares").read_text() == "2048"
    assert (tmp_path / "memory/pykt1/kubepods/memory.limit_in_bytes").read_text() == str(1 << 30)
    assert (cpu / "burstable" / "cpu.shares").read_text() == "512"
    assert (cpu / "besteffort" / "cpu.shares").read_text() == "2"
    assert m.ensure_pod(_pod(G, "1", limits=True)) == f"/pykt1/kubepods/pod{G}"
    assert m.ensure_pod(_pod(B, "500m")) == f"/pykt1/kubepods/burstable/pod{B}"
    assert m.ensure_pod(_pod(E)) == f"/pykt1/kubepods/besteffort/pod{E}"
    assert m.cgroup_parent(_pod(E)) == f"/pykt1/kubepods/besteffort/pod{E}"
    assert (cpu / f"pod{G}" / "cpu.cfs_quota_us").read_text() == "100000"
    assert (
        tmp_path / "memory/pykt1/kubepods/besteffort" / f"pod{E}" / "memory.limit_in_bytes"
    ).exists() is False
    assert (cpu / "besteffort" / f"pod{E}" / "cpu.shares").read_text() == "2"
    assert set(m.pod_cgroups()) == {G, B, E}
    m.update_qos([_pod(B, "500m"), _pod("x" * 10, "250m")])
    assert (cpu / "burstable" / "cpu.shares").read_text() == "768"


@pytest.mark.usefixtures("cgroupfs_rmdir")
def test_cleanup_removes_only_inactive_pods_without_processes(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    m.setup(Resources(cpu_shares=2048))
    for pod in (_pod(G, "1", limits=True), _pod(B, "500m"), _pod(E)):
        m.ensure_pod(pod)
    busy = tmp_path / "memory/pykt1/kubepods/besteffort" / f"pod{E}" / "cgroup.procs"
    busy.write_text("99\n")
    assert m.process_count(E) == 1
    assert m.cleanup({G}) == [B]
    assert set(m.pod_cgroups()) == {G, E}
    busy.write_text("")
    assert m.cleanup({G}) == [E]
    assert set(m.pod_cgroups()) == {G}
    assert (tmp_path / "cpu/pykt1/kubepods/besteffort").is_dir()  # tiers stay


def test_systemd_driver_names(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    m.driver = "systemd"
    assert m.cgroup_parent(_pod(E)) == (
        "/pykt1.slice/pykt1-kubepods.slice/pykt1-kubepods-besteffort.slice/"
        f"pykt1-kubepods-besteffort-pod{E.replace('-', '_')}.slice"
    )


@pytest.mark.usefixtures("cgroupfs_rmdir")
def test_systemd_driver_lays_out_slices(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    m.driver = "systemd"
    m.setup(Resources(cpu_shares=2048))
    m.ensure_pod(_pod(E))
    slices = tmp_path / "cpu" / "pykt1.slice" / "pykt1-kubepods.slice"
    pod = (
        slices
        / "pykt1-kubepods-besteffort.slice"
        / f"pykt1-kubepods-besteffort-pod{E.replace('-', '_')}.slice"
    )
    assert (pod / "cpu.shares").read_text() == "2"
    assert set(m.pod_cgroups()) == {E}
    assert m.cleanup(set()) == [E]
    assert not pod.exists()
