"""Builds the eviction manager from the KubeletConfiguration: thresholds, the signal reader,
per-pod usage (pod cgroup, pod dir and logs), node-level reclaim through CRI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cri.client import RuntimeClient
from cri.errors import CRIError
from kube.jsontypes import JsonMap
from kubelet import events as ev
from kubelet.cgroups.host import CgroupHost
from kubelet.cgroups.manager import CgroupManager
from kubelet.config.model import KubeletConfiguration
from kubelet.eviction import signals
from kubelet.eviction import thresholds as th
from kubelet.eviction.gc import ImageGC, collect_containers
from kubelet.eviction.manager import EvictionManager
from kubelet.eviction.ranking import PodUsage
from kubelet.runtime.criconfig import pod_log_directory

log = logging.getLogger(__name__)


def dir_bytes(path: Path) -> int:
    """Disk used by the files under `path` (allocated blocks, hard links counted once)."""
    total, seen = 0, set()
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


async def image_fs(runtime: RuntimeClient, fallback: Path) -> Path:
    """The runtime's image filesystem mount point (CRI ImageFsInfo), else `fallback`."""
    try:
        info = await runtime.image_fs_info(deadline=5)
    except CRIError as e:
        log.warning("image filesystem unknown (%s); using %s for imagefs", e, fallback)
        return fallback
    for fs in info.image_filesystems:
        if fs.fs_id.mountpoint:
            return Path(fs.fs_id.mountpoint)
    return fallback


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return True


def build(
    kc: KubeletConfiguration,
    *,
    host: CgroupHost,
    cgroups: CgroupManager,
    runtime: RuntimeClient,
    root_dir: Path,
    imagefs: Path,
    active_pods: Callable[[], Sequence[JsonMap]],
    evict: Callable[[JsonMap, str, int], None],
    record: Callable[[ev.PodEvent], None],
    kubepods_memory: int = 0,
    sources_ready: Callable[[], bool] = lambda: True,
) -> EvictionManager:
    """`kubepods_memory`: the memory the kubepods cgroup was given (allocatable when "pods" is
    enforced), the capacity of allocatableMemory.available; 0 leaves that signal out."""
    thresholds = th.parse(
        kc.eviction_hard,
        kc.eviction_soft,
        kc.eviction_soft_grace_period,
        kc.eviction_minimum_reclaim,
        enforce_pods=kc.cgroups_per_qos and "pods" in kc.enforce_node_allocatable,
    )

    def pods_memory() -> th.Observation | None:
        working_set = cgroups.pods_working_set() if kubepods_memory > 0 else None
        if working_set is None:
            return None
        return signals.allocatable_memory(kubepods_memory, working_set)

    def stats(pod: JsonMap) -> PodUsage:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        disk = dir_bytes(root_dir / "pods" / uid)
        disk += dir_bytes(Path(pod_log_directory(pod, kc.pod_logs_dir)))
        return PodUsage(
            memory=cgroups.working_set(uid), disk=disk, processes=cgroups.process_count(uid)
        )

    async def container_gc() -> None:
        """Under disk pressure (upstream's DeleteAllUnusedContainers): dead containers of pods
        that no longer run go too, not only those of deleted or evicted pods."""
        uids = {str((p.get("metadata") or {}).get("uid")) for p in active_pods()}
        await collect_containers(runtime, keep=uids.__contains__, sources_ready=sources_ready())

    same = _same_device(root_dir, imagefs)
    log.info("eviction: nodefs %s, imagefs %s (%s)", root_dir, imagefs, "same" if same else "own")
    return EvictionManager(
        thresholds=thresholds,
        observe=lambda: signals.observe(host, root_dir, imagefs, pods_memory()),
        active_pods=active_pods,
        stats=stats,
        evict=evict,
        record=record,
        image_gc=ImageGC(runtime, min_age=kc.image_minimum_gc_age.total_seconds()),
        container_gc=container_gc,
        imagefs_is_nodefs=same,
        transition_period=kc.eviction_pressure_transition_period,
        max_pod_grace=kc.eviction_max_pod_grace_period,
    )
