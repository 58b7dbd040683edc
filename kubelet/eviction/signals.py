"""Reads the eviction signals from the host: memory.available from the root cgroup's working set
(as upstream), allocatableMemory.available from the kubepods cgroup's, nodefs / imagefs bytes and
inodes from statvfs, pid.available from the kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

from kube.facts import mem_total_bytes
from kubelet.cgroups import writer as cgw
from kubelet.cgroups.host import V1, CgroupHost
from kubelet.eviction import thresholds as th
from kubelet.eviction.thresholds import Observation


def _meminfo(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def memory(host: CgroupHost, meminfo: str) -> Observation:
    """capacity - working set; the root cgroup's working set is usage - inactive file pages
    (v1: memory.usage_in_bytes and total_inactive_file; v2's root has no memory.current, so
    usage is MemTotal - MemFree and inactive_file comes from the root memory.stat)."""
    capacity = mem_total_bytes(meminfo)
    if host.version == V1:
        root = host.v1_mounts["memory"]
        usage = int((cgw.read(root / "memory.usage_in_bytes") or "0").strip() or 0)
        inactive = cgw.stat_value(cgw.read(root / "memory.stat"), "total_inactive_file") or 0
    else:
        assert host.v2_mount is not None
        usage = capacity - _meminfo(meminfo, "MemFree")
        inactive = cgw.stat_value(cgw.read(host.v2_mount / "memory.stat"), "inactive_file") or 0
    working_set = max(0, usage - inactive)
    return Observation(available=max(0, capacity - working_set), capacity=capacity)


def allocatable_memory(allocatable: int, pods_working_set: int) -> Observation:
    """The pods' share: what the kubepods cgroup is given (node allocatable when enforced)
    less its working set; capacity is the allocatable amount, as upstream's available +
    working set of the pods' system container."""
    return Observation(available=max(0, allocatable - pods_working_set), capacity=allocatable)


def filesystem(path: Path) -> tuple[Observation, Observation]:
    """(bytes, inodes) available to unprivileged users and the filesystem's totals."""
    st = os.statvfs(path)
    return (
        Observation(available=st.f_bavail * st.f_frsize, capacity=st.f_blocks * st.f_frsize),
        Observation(available=st.f_favail, capacity=st.f_files),
    )


def pids(pid_max: str, threads_max: str, loadavg: str) -> Observation:
    """The kernel's limit (min of pid_max and threads-max) less the tasks that exist now."""
    limit = min(int(pid_max), int(threads_max))
    running = int(loadavg.split()[3].split("/")[1])
    return Observation(available=max(0, limit - running), capacity=limit)


def observe(
    host: CgroupHost, nodefs: Path, imagefs: Path, pods: Observation | None = None
) -> dict[str, Observation]:
    """Every signal; imagefs is the runtime's image filesystem (may be nodefs itself); `pods`
    the allocatableMemory.available observation, when the kubepods cgroup could be read."""
    out = {th.MEMORY_AVAILABLE: memory(host, Path("/proc/meminfo").read_text())}
    if pods is not None:
        out[th.ALLOCATABLE_MEMORY] = pods
    node_bytes, node_inodes = filesystem(nodefs)
    image_bytes, image_inodes = filesystem(imagefs if imagefs.exists() else nodefs)
    out[th.NODEFS_AVAILABLE], out[th.NODEFS_INODES] = node_bytes, node_inodes
    out[th.IMAGEFS_AVAILABLE], out[th.IMAGEFS_INODES] = image_bytes, image_inodes
    proc = Path("/proc/sys/kernel")
    out[th.PID_AVAILABLE] = pids(
        (proc / "pid_max").read_text(),
        (proc / "threads-max").read_text(),
        Path("/proc/loadavg").read_text(),
    )
    return out
