"""The v1 and v2 writers against directory trees shaped like cgroupfs and cgroup2."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.cgroups.planner import Resources
from kubelet.cgroups.v1 import V1Writer
from kubelet.cgroups.v2 import V2Writer

POD = ("r", "kubepods", "podu1")


def _v1(tmp_path: Path) -> V1Writer:
    mounts = {c: tmp_path / c for c in ("cpu", "cpuacct", "cpuset", "memory", "pids")}
    for m in mounts.values():
        m.mkdir()
    (mounts["cpuset"] / "cpuset.cpus").write_text("0-1\n")
    (mounts["cpuset"] / "cpuset.mems").write_text("0\n")
    (tmp_path / "systemd").mkdir()
    return V1Writer(mounts, (tmp_path / "systemd",))


def test_v1_ensure_writes_each_controller(tmp_path: Path) -> None:
    w = _v1(tmp_path)
    w.ensure(POD, Resources(512, 50000, 100000, 96 << 20, 100))
    pod = Path(*POD)
    assert (tmp_path / "cpu" / pod / "cpu.shares").read_text() == "512"
    assert (tmp_path / "cpu" / pod / "cpu.cfs_period_us").read_text() == "100000"
    assert (tmp_path / "cpu" / pod / "cpu.cfs_quota_us").read_text() == "50000"
    assert (tmp_path / "memory" / pod / "memory.limit_in_bytes").read_text() == str(96 << 20)
    assert (tmp_path / "pids" / pod / "pids.max").read_text() == "100"
    assert (tmp_path / "cpuacct" / pod).is_dir()
    for level in (Path("r"), Path("r/kubepods"), pod):  # new cpusets inherit the parent's
        assert (tmp_path / "cpuset" / level / "cpuset.cpus").read_text() == "0-1"
        assert (tmp_path / "cpuset" / level / "cpuset.mems").read_text() == "0"


def test_v1_unset_values_are_left_alone(tmp_path: Path) -> None:
    w = _v1(tmp_path)
    w.ensure(POD, Resources(cpu_shares=2))
    pod = Path(*POD)
    assert not (tmp_path / "memory" / pod / "memory.limit_in_bytes").exists()
    assert not (tmp_path / "cpu" / pod / "cpu.cfs_quota_us").exists()
    w.ensure(POD, Resources(cpu_quota=0, cpu_period=100000, pids_limit=-1))
    assert (tmp_path / "cpu" / pod / "cpu.cfs_quota_us").read_text() == "-1"
    assert (tmp_path / "pids" / pod / "pids.max").read_text() == "max"


@pytest.mark.usefixtures("cgroupfs_rmdir")
def test_v1_remove_waits_for_processes_in_any_hierarchy(tmp_path: Path) -> None:
    w = _v1(tmp_path)
    w.ensure(POD, Resources(cpu_shares=2))
    (tmp_path / "systemd" / Path(*POD) / "ctr").mkdir(parents=True)  # made by the runtime
    procs = tmp_path / "memory" / Path(*POD) / "ctr" / "cgroup.procs"
    procs.parent.mkdir()
    procs.write_text("4242\n")
    assert w.procs(POD) == [4242]
    assert w.children(("r", "kubepods")) == ["podu1"]
    assert not w.remove(POD)
    assert w.exists(POD)
    procs.write_text("")
    assert w.remove(POD)
    assert not w.exists(POD)
    assert not list(tmp_path.glob("*/r/kubepods/podu1"))
    assert w.remove(POD)  # already gone: fine


def test_v1_working_set(tmp_path: Path) -> None:
    w = _v1(tmp_path)
    w.ensure(POD, Resources())
    mem = tmp_path / "memory" / Path(*POD)
    (mem / "memory.usage_in_bytes").write_text("1000000\n")
    (mem / "memory.stat").write_text("inactive_file 5\ntotal_inactive_file 400000\n")
    assert w.memory_working_set(POD) == 600000
    assert w.memory_working_set(("missing",)) is None


def _v2(tmp_path: Path, controllers: str) -> V2Writer:
    (tmp_path / "cgroup.controllers").write_text(controllers + "\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return V2Writer(tmp_path)


def _v2_dirs(tmp_path: Path, controllers: str, files: tuple[str, ...]) -> Path:
    """Pre-make the path as the kernel would, with the controllers' files."""
    path = tmp_path
    for part in POD:
        path = path / part
        path.mkdir()
        (path / "cgroup.controllers").write_text(controllers)
        (path / "cgroup.subtree_control").write_text("")
        (path / "cgroup.procs").write_text("")
        for f in files:
            (path / f).write_text("")
    return path


def test_v2_ensure_enables_controllers_and_writes_files(tmp_path: Path) -> None:
    w = _v2(tmp_path, "cpuset cpu io memory hugetlb pids rdma misc")
    pod = _v2_dirs(tmp_path, "cpu memory pids", ("cpu.weight", "cpu.max", "memory.max", "pids.max"))
    w.ensure(POD, Resources(512, 50000, 100000, 96 << 20, 100))
    assert (tmp_path / "cgroup.subtree_control").read_text() == (
        "+cpu +cpuset +memory +pids +hugetlb +io"
    )
    assert (tmp_path / "r" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (pod / "cpu.weight").read_text() == "20"
    assert (pod / "cpu.max").read_text() == "50000 100000"
    assert (pod / "memory.max").read_text() == str(96 << 20)
    assert (pod / "pids.max").read_text() == "100"
    w.ensure(POD, Resources(cpu_quota=-1, cpu_period=100000, pids_limit=0))
    assert (pod / "cpu.max").read_text() == "max 100000"
    assert (pod / "pids.max").read_text() == "max"
    assert w.missing == set()


def test_v2_controller_not_available_is_skipped_and_remembered(tmp_path: Path) -> None:
    w = _v2(tmp_path, "hugetlb")
    w.ensure(POD, Resources(cpu_shares=512, memory_limit=1 << 20, pids_limit=10))
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+hugetlb"
    assert w.missing == {"cpu", "memory", "pids"}
    assert not (tmp_path.joinpath(*POD) / "cpu.weight").exists()


@pytest.mark.usefixtures("cgroupfs_rmdir")
def test_v2_procs_remove_and_working_set(tmp_path: Path) -> None:
    w = _v2(tmp_path, "memory")
    pod = _v2_dirs(tmp_path, "memory", ("memory.current", "memory.stat"))
    (pod / "memory.current").write_text("2000\n")
    (pod / "memory.stat").write_text("anon 1\ninactive_file 500\n")
    assert w.memory_working_set(POD) == 1500
    (pod / "cgroup.procs").write_text("7\n8\n")
    assert w.procs(POD) == [7, 8]
    assert not w.remove(POD)
    (pod / "cgroup.procs").write_text("")
    assert w.remove(POD)
    assert not w.exists(POD)
    assert w.children(("r", "kubepods")) == []
