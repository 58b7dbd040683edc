"""Eviction thresholds as upstream's pkg/kubelet/eviction helpers treat them, pure: parsing, met
(with minimum reclaim), first-observed and grace periods, node conditions and their transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from kubelet.node.allocatable import threshold_bytes

MEMORY_AVAILABLE = "memory.available"
NODEFS_AVAILABLE, NODEFS_INODES = "nodefs.available", "nodefs.inodesFree"
IMAGEFS_AVAILABLE, IMAGEFS_INODES = "imagefs.available", "imagefs.inodesFree"
PID_AVAILABLE = "pid.available"
ALLOCATABLE_MEMORY = "allocatableMemory.available"
"""Node allocatable memory less the kubepods cgroup's working set."""
MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE = "MemoryPressure", "DiskPressure", "PIDPressure"

CONDITION = {
    MEMORY_AVAILABLE: MEMORY_PRESSURE,
    ALLOCATABLE_MEMORY: MEMORY_PRESSURE,
    NODEFS_AVAILABLE: DISK_PRESSURE,
    NODEFS_INODES: DISK_PRESSURE,
    IMAGEFS_AVAILABLE: DISK_PRESSURE,
    IMAGEFS_INODES: DISK_PRESSURE,
    "containerfs.available": DISK_PRESSURE,
    "containerfs.inodesFree": DISK_PRESSURE,
    PID_AVAILABLE: PID_PRESSURE,
}
RESOURCE = {
    MEMORY_AVAILABLE: "memory",
    ALLOCATABLE_MEMORY: "memory",
    NODEFS_AVAILABLE: "ephemeral-storage",
    IMAGEFS_AVAILABLE: "ephemeral-storage",
    "containerfs.available": "ephemeral-storage",
    NODEFS_INODES: "inodes",
    IMAGEFS_INODES: "inodes",
    "containerfs.inodesFree": "inodes",
    PID_AVAILABLE: "pids",
}
"""The resource an eviction for the signal reclaims (named in the Evicted message)."""


@dataclass(frozen=True)
class Threshold:
    signal: str
    value: str
    """A quantity ("100Mi") or a percentage of capacity ("10%")."""
    grace: timedelta = timedelta(0)
    """0 for hard thresholds."""
    min_reclaim: str = ""
    hard: bool = True


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


def parse(
    hard: Mapping[str, str],
    soft: Mapping[str, str],
    soft_grace: Mapping[str, timedelta],
    min_reclaim: Mapping[str, str],
    *,
    enforce_pods: bool = False,
) -> list[Threshold]:
    """The configured thresholds; a value of 0 or 0% disables a signal's threshold. With
    enforceNodeAllocatable "pods", every hard memory.available threshold also applies to
    allocatableMemory.available (upstream's addAllocatableThresholds)."""
    out = []
    for thresholds, is_hard in ((hard, True), (soft, False)):
        for signal, value in sorted(thresholds.items()):
            if value.strip() in ("0", "0%", "100%") and signal in CONDITION:
                continue
            grace = timedelta(0) if is_hard else soft_grace.get(signal, timedelta(0))
            out.append(Threshold(signal, value, grace, min_reclaim.get(signal, ""), is_hard))
    if enforce_pods:
        extra = [
            replace(t, signal=ALLOCATABLE_MEMORY)
            for t in out
            if t.signal == MEMORY_AVAILABLE and t.hard
        ]
        out = merge(out, extra)
    return out


def quantity(t: Threshold, capacity: int, with_min_reclaim: bool = False) -> int:
    q = threshold_bytes(t.value, capacity)
    if with_min_reclaim and t.min_reclaim:
        q += threshold_bytes(t.min_reclaim, capacity)
    return q


def met(
    thresholds: Iterable[Threshold],
    observations: Mapping[str, Observation],
    enforce_min_reclaim: bool = False,
) -> list[Threshold]:
    """The thresholds whose signal is below the threshold (plus its minimum reclaim when
    enforced: a met threshold stays met until that much more is free)."""
    out = []
    for t in thresholds:
        o = observations.get(t.signal)
        if o is not None and quantity(t, o.capacity, enforce_min_reclaim) > o.available:
            out.append(t)
    return out


def merge(*groups: Iterable[Threshold]) -> list[Threshold]:
    return list(dict.fromkeys(t for g in groups for t in g))


def first_observed(
    thresholds: Iterable[Threshold], previous: Mapping[Threshold, float], now: float
) -> dict[Threshold, float]:
    return {t: previous.get(t, now) for t in thresholds}


def grace_met(first: Mapping[Threshold, float], now: float) -> list[Threshold]:
    return [t for t, since in first.items() if now - since >= t.grace.total_seconds()]


def conditions(thresholds: Iterable[Threshold]) -> list[str]:
    return sorted({CONDITION[t.signal] for t in thresholds if t.signal in CONDITION})


def last_observed(
    conds: Iterable[str], previous: Mapping[str, float], now: float
) -> dict[str, float]:
    return {**previous, **{c: now for c in conds}}


def observed_since(last: Mapping[str, float], period: timedelta, now: float) -> list[str]:
    """Conditions kept for the pressure transition period after last seen."""
    return sorted(c for c, at in last.items() if now - at < period.total_seconds())


def by_priority(thresholds: Iterable[Threshold]) -> list[Threshold]:
    """Memory first, then the others (upstream's byEvictionPriority), hard before soft."""
    return sorted(
        thresholds, key=lambda t: (RESOURCE.get(t.signal) != "memory", not t.hard, t.signal)
    )


def format_bytes(n: int) -> str:
    """A quantity as upstream prints it: exact binary suffix when it divides, else Ki."""
    units = (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20))
    for suffix, unit in (*units, ("Ki", 1 << 10)):
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return f"{n // 1024}Ki" if n >= 1024 else str(n)


def eviction_message(t: Threshold, o: Observation | None) -> str:
    """Upstream's evictionMessage: the resource, then the threshold and what was available."""
    resource = RESOURCE.get(t.signal, t.signal)
    message = f"The node was low on resource: {resource}. "
    if o is not None:
        q = quantity(t, o.capacity)
        if resource in ("memory", "ephemeral-storage"):
            message += f"Threshold quantity: {format_bytes(q)}, available: "
            message += f"{format_bytes(o.available)}. "
        else:
            message += f"Threshold quantity: {q}, available: {o.available}. "
    return message
