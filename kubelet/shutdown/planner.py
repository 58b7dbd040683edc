"""Graceful node shutdown, pure: the priority groups from shutdownGracePeriod,
shutdownGracePeriodCriticalPods or shutdownGracePeriodByPodPriority (upstream's migrateConfig),
which pod stops in which group with which grace period, and the reasons and texts users see.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Json = Mapping[str, Any]

SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
"""system-node-critical and system-cluster-critical start here (SystemCriticalPriority)."""
DEFAULT_PRIORITY = 0
"""A pod without spec.priority (scheduling.DefaultPriorityWhenNoDefaultClassExists)."""

NODE_SHUTDOWN_REASON = "Terminated"
NODE_SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
NOT_ADMITTED_REASON = "NodeShutdown"
NOT_ADMITTED_MESSAGE = "Pod was rejected as the node is shutting down."
NOT_READY_MESSAGE = "node is shutting down"
"""The shutdown manager's error in the Ready condition's message (reason KubeletNotReady)."""
EVENT_REASON = "Shutdown"
EVENT_SHUTDOWN = "Shutdown manager detected shutdown event"
EVENT_CANCELLED = "Shutdown manager detected shutdown cancellation"
LOGIND_DROP_IN = "99-kubelet.conf"


@dataclass(frozen=True)
class PriorityGrace:
    """One shutdownGracePeriodByPodPriority entry: pods from `priority` up to the next entry's
    priority get `seconds` to stop."""

    priority: int
    seconds: int


@dataclass(frozen=True)
class Kill:
    pod: Json
    grace: int
    """The pod's grace period: the group's, or its own terminationGracePeriodSeconds if shorter."""

    @property
    def ref(self) -> str:
        meta = self.pod.get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}"


@dataclass(frozen=True)
class Step:
    """Pods stopped together; the next step starts when they are all gone or `seconds` pass."""

    priority: int
    seconds: int
    kills: tuple[Kill, ...] = field(default_factory=tuple)


def priority_periods(
    grace_period: float,
    critical_pods: float,
    by_priority: Sequence[PriorityGrace] = (),
) -> list[PriorityGrace]:
    """The groups, lowest priority first. shutdownGracePeriodByPodPriority wins when given;
    otherwise shutdownGracePeriod splits into regular pods (grace - critical) and critical ones
    (critical). Empty (graceful shutdown off) when the grace period is 0 or the split is bad."""
    if by_priority:
        return sorted(by_priority, key=lambda p: p.priority)
    if grace_period <= 0:
        return []
    regular = int(grace_period) - int(critical_pods)
    if regular < 0:
        return []
    return [
        PriorityGrace(DEFAULT_PRIORITY, regular),
        PriorityGrace(SYSTEM_CRITICAL_PRIORITY, int(grace_period) - regular),
    ]


def period_requested(periods: Iterable[PriorityGrace]) -> int:
    """Seconds the node must delay shutdown: logind's InhibitDelayMaxSec must be at least this."""
    return sum(p.seconds for p in periods)


def pod_priority(pod: Json) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return int(value) if isinstance(value, int) else DEFAULT_PRIORITY


def group_index(periods: Sequence[PriorityGrace], priority: int) -> int:
    """Upstream's groupByPriority: the group with the highest priority not above the pod's;
    below the lowest one -> the lowest; above the highest -> the highest."""
    priorities = [p.priority for p in periods]
    return max(0, bisect.bisect_right(priorities, priority) - 1)


def pod_grace(pod: Json, group_seconds: int) -> int:
    own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    if isinstance(own, int) and own <= group_seconds:
        return max(0, own)
    return group_seconds


def plan(periods: Sequence[PriorityGrace], pods: Iterable[Json]) -> list[Step]:
    """The shutdown timeline: one step per group that has pods, lowest priority first."""
    members: list[list[Json]] = [[] for _ in periods]
    if not periods:
        return []
    for pod in pods:
        members[group_index(periods, pod_priority(pod))].append(pod)
    return [
        Step(p.priority, p.seconds, tuple(Kill(pod, pod_grace(pod, p.seconds)) for pod in group))
        for p, group in zip(periods, members, strict=True)
        if group
    ]


def logind_override(seconds: int) -> str:
    """The drop-in that raises logind's InhibitDelayMaxSec (upstream writes the same text)."""
    return f"# Kubelet logind override\n[Login]\nInhibitDelayMaxSec={seconds}\n"
