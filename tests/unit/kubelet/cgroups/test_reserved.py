"""enforceNodeAllocatable kube-reserved / system-reserved: which cgroups, the limits they get
(all resources, or cpu only for -compressible), and a clear refusal when the cgroup is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.cgroups.host import CgroupSetupError
from kubelet.cgroups.manager import CgroupManager
from kubelet.cgroups.planner import Resources, reserved_resources
from kubelet.cgroups.v1 import V1Writer
from kubelet.node.allocatable import Reservations, ReservedCgroup, reserved_cgroups

R = Reservations(
    kube_reserved={"cpu": "200m", "memory": "32Mi"},
    system_reserved={"cpu": "1", "memory": "1Gi", "pid": "1000"},
)


def test_reserved_resources_all_or_compressible_only() -> None:
    assert reserved_resources(R.system_reserved) == Resources(
        cpu_shares=1024, memory_limit=1 << 30, pids_limit=1000
    )
    assert reserved_resources(R.system_reserved, compressible_only=True) == Resources(
        cpu_shares=1024
    )
    assert reserved_resources({"memory": "bogus"}) == Resources()


def test_reserved_cgroups_system_first_then_kube() -> None:
    enforce = ("pods", "kube-reserved", "system-reserved-compressible")
    out = reserved_cgroups(enforce, R, system_cgroup="/sys", kube_cgroup="")
    assert out == [
        ReservedCgroup(
            "system-reserved-compressible", "systemReservedCgroup", "/sys", R.system_reserved, True
        ),
        ReservedCgroup("kube-reserved", "kubeReservedCgroup", "", R.kube_reserved, False),
    ]
    assert reserved_cgroups(("pods",), R, system_cgroup="/sys", kube_cgroup="/k") == []


def _manager(tmp_path: Path) -> CgroupManager:
    mounts = {c: tmp_path / c for c in ("cpu", "memory", "pids")}
    for m in mounts.values():
        m.mkdir()
    return CgroupManager(V1Writer(mounts), cgroup_root="/pykt1")


def test_limits_written_to_an_existing_cgroup(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    for c in ("cpu", "memory", "pids"):
        (tmp_path / c / "system.slice").mkdir()
    m.enforce_existing("/system.slice", reserved_resources(R.system_reserved), what="x")
    assert (tmp_path / "cpu/system.slice/cpu.shares").read_text() == "1024"
    assert (tmp_path / "memory/system.slice/memory.limit_in_bytes").read_text() == str(1 << 30)
    assert (tmp_path / "pids/system.slice/pids.max").read_text() == "1000"


def test_absent_cgroup_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    (tmp_path / "cpu" / "kube.slice").mkdir()
    what = 'enforceNodeAllocatable "kube-reserved" (kubeReservedCgroup)'
    with pytest.raises(CgroupSetupError) as e:
        m.enforce_existing("/kube.slice", reserved_resources(R.kube_reserved), what=what)
    assert str(e.value) == (
        'enforceNodeAllocatable "kube-reserved" (kubeReservedCgroup): cgroup "/kube.slice" does '
        "not exist (not in: memory, pids); create it before starting the node agent, or stop "
        "enforcing it"
    )
    assert not (tmp_path / "memory" / "kube.slice").exists()
    assert not (tmp_path / "cpu/kube.slice/cpu.shares").exists()
    with pytest.raises(CgroupSetupError, match='cgroup "" does not exist'):
        m.enforce_existing("", Resources(), what=what)
