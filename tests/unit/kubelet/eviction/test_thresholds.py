"""Threshold logic: parsing, met with minimum reclaim, grace periods, conditions, messages."""

from __future__ import annotations

from datetime import timedelta

from kubelet.eviction import thresholds as th
from kubelet.eviction.signals import allocatable_memory
from kubelet.eviction.thresholds import Observation, Threshold

GI = 1 << 30


def test_parse_hard_soft_and_disabled() -> None:
    out = th.parse(
        {"memory.available": "100Mi", "nodefs.inodesFree": "0%"},
        {"nodefs.available": "10%"},
        {"nodefs.available": timedelta(seconds=30)},
        {"memory.available": "50Mi"},
    )
    assert out == [
        Threshold("memory.available", "100Mi", timedelta(0), "50Mi", True),
        Threshold("nodefs.available", "10%", timedelta(seconds=30), "", False),
    ]


def test_met_with_percent_and_minimum_reclaim() -> None:
    t = Threshold("nodefs.available", "10%", min_reclaim="1Gi")
    obs = {"nodefs.available": Observation(available=12 * GI, capacity=100 * GI)}
    assert th.met([t], obs, enforce_min_reclaim=True) == []
    obs = {"nodefs.available": Observation(available=int(10.5 * GI), capacity=100 * GI)}
    assert th.met([t], obs) == []
    assert th.met([t], obs, enforce_min_reclaim=True) == [t]  # needs 11 GiB free to resolve
    low = {"nodefs.available": Observation(available=5 * GI, capacity=100 * GI)}
    assert th.met([t], low) == [t]
    assert th.met([t], {}) == []


def test_grace_period_and_first_observed() -> None:
    soft = Threshold("memory.available", "1Gi", timedelta(seconds=30), hard=False)
    hard = Threshold("memory.available", "100Mi")
    first = th.first_observed([soft, hard], {}, now=100.0)
    assert th.grace_met(first, 100.0) == [hard]
    first = th.first_observed([soft, hard], first, now=140.0)
    assert first[soft] == 100.0
    assert th.grace_met(first, 140.0) == [soft, hard]


def test_conditions_stay_for_the_transition_period() -> None:
    met = [Threshold("memory.available", "1Gi"), Threshold("pid.available", "10")]
    assert th.conditions(met) == ["MemoryPressure", "PIDPressure"]
    last = th.last_observed(th.conditions(met), {}, now=10.0)
    last = th.last_observed([], last, now=20.0)
    period = timedelta(seconds=30)
    assert th.observed_since(last, period, 39.0) == ["MemoryPressure", "PIDPressure"]
    assert th.observed_since(last, period, 40.0) == []


def test_memory_thresholds_come_first() -> None:
    disk, mem = Threshold("nodefs.available", "1Gi"), Threshold("memory.available", "1Gi")
    soft_mem = Threshold("memory.available", "2Gi", hard=False)
    assert th.by_priority([disk, soft_mem, mem]) == [mem, soft_mem, disk]


def test_eviction_message() -> None:
    t = Threshold("memory.available", "100Mi")
    o = Observation(available=50 * 1024 * 1024 + 1024, capacity=GI)
    assert th.eviction_message(t, o) == (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51201Ki. "
    )
    pid = Threshold("pid.available", "1000")
    assert th.eviction_message(pid, Observation(10, 4096)) == (
        "The node was low on resource: pids. Threshold quantity: 1000, available: 10. "
    )
    assert th.eviction_message(t, None) == "The node was low on resource: memory. "
    assert th.format_bytes(100 << 40) == "100Ti" and th.format_bytes(3 << 30) == "3Gi"
    assert th.format_bytes((1 << 40) + (1 << 30)) == "1025Gi"


def test_enforced_pods_copy_hard_memory_thresholds_to_allocatable() -> None:
    hard = {"memory.available": "100Mi", "nodefs.available": "10%"}
    soft = {"memory.available": "300Mi"}
    grace = {"memory.available": timedelta(seconds=30)}
    out = th.parse(hard, soft, grace, {"memory.available": "50Mi"}, enforce_pods=True)
    assert [t for t in out if t.signal == "allocatableMemory.available"] == [
        Threshold("allocatableMemory.available", "100Mi", timedelta(0), "50Mi", True)
    ]  # only the hard one, as upstream's addAllocatableThresholds
    plain = th.parse(hard, soft, grace, {})
    assert all(t.signal != "allocatableMemory.available" for t in plain)


def test_allocatable_memory_observation() -> None:
    assert allocatable_memory(4 * GI, GI) == Observation(available=3 * GI, capacity=4 * GI)
    assert allocatable_memory(GI, 2 * GI) == Observation(available=0, capacity=GI)
