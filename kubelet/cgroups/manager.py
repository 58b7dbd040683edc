"""Keeps the node's pod cgroups: kubepods (sized to allocatable when enforced), the burstable and
besteffort tiers, one pod<uid> per pod; removes a pod's cgroup once no process is left in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from kube.jsontypes import JsonMap
from kubelet.cgroups import host as cghost
from kubelet.cgroups import planner
from kubelet.cgroups.planner import Resources
from kubelet.cgroups.v1 import V1Writer
from kubelet.cgroups.v2 import V2Writer
from kubelet.cgroups.writer import CgroupError, CgroupWriter
from kubelet.pods.qos import QOSClass, qos_class_of

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 2.0


def writer_for(found: cghost.CgroupHost) -> CgroupWriter:
    if found.version == cghost.V1:
        return V1Writer(found.v1_mounts, found.v1_other)
    assert found.v2_mount is not None
    return V2Writer(found.v2_mount)


class CgroupManager:
    """Pod cgroups of one node agent, all below its cgroupRoot."""

    def __init__(
        self,
        writer: CgroupWriter,
        *,
        cgroup_root: str = "",
        cgroups_per_qos: bool = True,
        driver: str = cghost.CGROUPFS,
        pod_pids_limit: int = -1,
    ) -> None:
        self.writer = writer
        self.root = cgroup_root
        self.per_qos = cgroups_per_qos
        self.driver = driver
        self.pod_pids_limit = pod_pids_limit

    # ---- names -----------------------------------------------------------------------------
    def name(self, parts: planner.Parts) -> str:
        if self.driver == cghost.SYSTEMD:
            return planner.systemd_name(parts)
        return planner.cgroupfs_name(parts)

    def pod_parts(self, pod: JsonMap) -> tuple[str, ...]:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        return planner.pod_parts(self.root, qos_class_of(pod), uid, self.per_qos)

    def cgroup_parent(self, pod: JsonMap) -> str:
        """The sandbox's cgroup parent in CRI (the pod cgroup, named for the driver)."""
        return self.name(self.pod_parts(pod))

    def fs(self, parts: planner.Parts) -> tuple[str, ...]:
        """Where the cgroup's directories are for this driver (what the writer is given)."""
        return planner.fs_parts(parts, self.driver)

    def _containers(self) -> list[tuple[str, ...]]:
        """The cgroups (directories) that hold pod cgroups directly."""
        base = planner.node_parts(self.root, self.per_qos)
        if not self.per_qos:
            return [self.fs(base)]
        tiers = (
            planner.tier_parts(self.root, q) for q in (QOSClass.BURSTABLE, QOSClass.BEST_EFFORT)
        )
        return [self.fs(base), *(self.fs(t) for t in tiers)]

    def pod_cgroups(self) -> dict[str, tuple[str, ...]]:
        """Pod UID -> its cgroup's directories, for every pod cgroup present."""
        out: dict[str, tuple[str, ...]] = {}
        for base in self._containers():
            for child in self.writer.children(base):
                uid = planner.pod_uid_of(child)
                if uid is not None:
                    out[uid] = (*base, child)
        return out

    # ---- node level ------------------------------------------------------------------------
    def setup(self, node: Resources, pods: Iterable[JsonMap] = ()) -> None:
        """Create kubepods with the node's resources and the QoS tiers (start-up)."""
        self.writer.ensure(self.fs(planner.node_parts(self.root, self.per_qos)), node)
        if self.per_qos:
            self.update_qos(pods)
        log.info(
            "cgroups v%d: pods under %s",
            self.writer.version,
            self.name(planner.node_parts(self.root, self.per_qos)),
        )

    def enforce_existing(self, name: str, res: Resources, *, what: str) -> None:
        """Apply limits to a cgroup the node's operator made (kube-/system-reserved), by its
        cgroupfs path; refuses, naming `what` asked for it, when the cgroup is not there."""
        parts = planner.root_parts(name)
        missing = self.writer.absent(parts) if parts else []
        if not parts or missing:
            where = f" (not in: {', '.join(missing)})" if missing else ""
            raise cghost.CgroupSetupError(
                f'{what}: cgroup "{name}" does not exist{where}; create it before starting '
                "the node agent, or stop enforcing it"
            )
        self.writer.ensure(parts, res)
        log.info("cgroup %s limited for %s: %s", name, what, res)

    def update_qos(self, pods: Iterable[JsonMap]) -> None:
        """The burstable tier's shares follow the Burstable pods' CPU requests; besteffort 2."""
        if not self.per_qos:
            return
        for qos, res in planner.qos_tier_resources(pods).items():
            self.writer.ensure(self.fs(planner.tier_parts(self.root, qos)), res)

    # ---- pods ------------------------------------------------------------------------------
    def ensure_pod(self, pod: JsonMap) -> str:
        """Create or update the pod's cgroup; returns its name for the sandbox's cgroup parent."""
        parts = self.pod_parts(pod)
        res = planner.pod_resources(pod, pids_limit=self.pod_pids_limit)
        self.writer.ensure(self.fs(parts), res)
        return self.name(parts)

    def cleanup(self, active: set[str]) -> list[str]:
        """Remove pod cgroups of pods no longer active once no process is left in them (else
        they are retried on the next round); returns the UIDs removed."""
        removed = []
        for uid, parts in self.pod_cgroups().items():
            if uid in active:
                continue
            try:
                gone = self.writer.remove(parts)
            except CgroupError as e:
                log.warning("removing cgroup of pod uid=%s failed: %s", uid, e)
                continue
            if gone:
                removed.append(uid)
                log.info("removed cgroup %s of pod uid=%s", "/".join(parts), uid)
        return removed

    def pods_working_set(self) -> int | None:
        """The working set of every pod together (the kubepods cgroup)."""
        return self.writer.memory_working_set(self.fs(planner.node_parts(self.root, self.per_qos)))

    def working_set(self, uid: str) -> int | None:
        parts = self.pod_cgroups().get(uid)
        return None if parts is None else self.writer.memory_working_set(parts)

    def process_count(self, uid: str) -> int:
        parts = self.pod_cgroups().get(uid)
        return 0 if parts is None else len(self.writer.procs(parts))

    async def housekeeping(
        self,
        active_pods: Callable[[], Sequence[JsonMap]],
        *,
        ready: Callable[[], Awaitable[object]] | None = None,
        every: float = HOUSEKEEPING_SECONDS,
    ) -> None:
        """Orphan cleanup (once the pod sources are read, so a restarted agent knows its pods,
        then periodically) and the QoS tiers' update."""
        if ready is not None:
            await ready()
        while True:
            pods = active_pods()
            uids = {str((p.get("metadata") or {}).get("uid") or "") for p in pods}
            try:
                self.cleanup(uids)
                self.update_qos(pods)
            except CgroupError as e:
                log.warning("cgroup housekeeping: %s", e)
            await asyncio.sleep(every)


def build(
    found: cghost.CgroupHost,
    *,
    cgroup_root: str,
    cgroups_per_qos: bool,
    driver: str,
    pod_pids_limit: int,
) -> CgroupManager:
    """The manager for the detected host; refuses a driver the host cannot serve."""
    pid1 = (Path("/proc/1/comm").read_text() if Path("/proc/1/comm").exists() else "").strip()
    cghost.check_driver(driver, pid1)
    return CgroupManager(
        writer_for(found),
        cgroup_root=cgroup_root,
        cgroups_per_qos=cgroups_per_qos,
        driver=driver,
        pod_pids_limit=pod_pids_limit,
    )


def remove_root(cgroup_root: str) -> bool:
    """Remove a cgroup root and everything below it when no process is left (cluster down)."""
    parts = planner.root_parts(cgroup_root)
    if not parts:
        return False
    try:
        writer = writer_for(cghost.detect())
        return writer.exists(parts) and writer.remove(parts)
    except (cghost.CgroupSetupError, CgroupError, OSError) as e:
        log.warning("removing cgroup root %s failed: %s", cgroup_root, e)
        return False
