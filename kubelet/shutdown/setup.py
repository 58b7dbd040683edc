"""Builds the node shutdown manager from the KubeletConfiguration for the composition root:
the priority groups, and pod kills through the pod workers (Failed, reason Terminated, with
DisruptionTarget) as upstream's killPodNow. None when graceful shutdown is off.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from kubelet.config.model import KubeletConfiguration
from kubelet.pods.model import PodUID, Waiting
from kubelet.pods.workers import PodWorkers
from kubelet.shutdown import planner
from kubelet.shutdown.manager import Hooks, ShutdownManager

log = logging.getLogger(__name__)


def build(
    kc: KubeletConfiguration,
    *,
    workers: PodWorkers,
    sync_node_status: Callable[[], Awaitable[None]],
    record: Callable[[str], None],
    root_dir: Path,
    bus_address: str | None = None,
) -> ShutdownManager | None:
    by_priority = tuple(
        planner.PriorityGrace(p.priority, p.shutdown_grace_period_seconds)
        for p in kc.shutdown_grace_period_by_pod_priority
    )
    periods = planner.priority_periods(
        kc.shutdown_grace_period.total_seconds(),
        kc.shutdown_grace_period_critical_pods.total_seconds(),
        by_priority,
    )
    if not periods:
        log.info("no graceful shutdown configured: node shutdown will be immediate")
        return None
    failure = Waiting(planner.NODE_SHUTDOWN_REASON, planner.NODE_SHUTDOWN_MESSAGE)

    async def kill(pod: planner.Json, grace: int) -> None:
        stopped = workers.halt(PodUID(str(pod["metadata"]["uid"])), failure, grace)
        if stopped is not None:
            await stopped.wait()

    hooks = Hooks(
        active_pods=workers.active_pods,
        kill=kill,
        sync_node_status=sync_node_status,
        record=record,
    )
    return ShutdownManager(periods, hooks, state_dir=root_dir, bus_address=bus_address)
