"""The eviction manager's rounds with fake signals: conditions, node-level reclaim first, one
pod per round in rank order, soft grace periods, minimum reclaim, the transition period."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from kubelet import events as ev
from kubelet.eviction.manager import EvictionManager, eviction_grace
from kubelet.eviction.metrics import EVICTIONS
from kubelet.eviction.ranking import PodUsage
from kubelet.eviction.thresholds import Observation, Threshold

MI = 1 << 20


class Fake:
    def __init__(self) -> None:
        self.now = 0.0
        self.obs = {
            "memory.available": Observation(1000 * MI, 2000 * MI),
            "nodefs.available": Observation(50 * MI, 1000 * MI),
        }
        self.pods: list[dict[str, Any]] = [_pod("bu", "100Mi"), _pod("be")]
        self.evicted: list[tuple[str, str]] = []
        self.graces: list[int] = []
        self.events: list[ev.PodEvent] = []
        self.gc_runs = 0

    def evict(self, pod: Any, message: str, grace: int) -> None:
        self.evicted.append((pod["metadata"]["name"], message))
        self.graces.append(grace)
        self.pods = [p for p in self.pods if p is not pod]

    def manager(self, *thresholds: Threshold, **kw: Any) -> EvictionManager:
        return EvictionManager(
            thresholds=list(thresholds),
            observe=lambda: dict(self.obs),
            active_pods=lambda: list(self.pods),
            stats=lambda p: PodUsage(memory=10 * MI, disk=_disk(p), processes=1),
            evict=self.evict,
            record=self.events.append,
            clock=lambda: self.now,
            transition_period=timedelta(seconds=30),
            **kw,
        )


def _pod(name: str, memory: str | None = None) -> dict[str, Any]:
    res = {"requests": {"memory": memory}} if memory else {}
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "c", "resources": res}]},
    }


def _disk(pod: Mapping[str, Any]) -> int:
    return 5 * MI if pod["metadata"]["name"] == "be" else MI


def _run(m: EvictionManager) -> Any:
    return asyncio.run(m.synchronize())


def test_memory_pressure_evicts_best_effort_first_one_per_round() -> None:
    f = Fake()
    m = f.manager(Threshold("memory.available", "1500Mi"))
    before = EVICTIONS.labels(eviction_signal="memory.available")._value.get()
    evicted = _run(m)
    assert evicted["metadata"]["name"] == "be"
    assert EVICTIONS.labels(eviction_signal="memory.available")._value.get() == before + 1
    assert m.conditions == ["MemoryPressure"] and m.pressure("MemoryPressure")
    assert f.evicted == [
        (
            "be",
            "The node was low on resource: memory. Threshold quantity: 1500Mi, available: 1000Mi. ",
        )
    ]
    assert f.events[0].reason == "Evicted" and f.events[0].type == ev.WARNING
    assert m.admit(_pod("new")) is not None and m.admit(_pod("new", "1Mi")) is None
    assert _run(m)["metadata"]["name"] == "bu"
    assert _run(m) is None  # nothing left to evict


def test_node_level_reclaim_that_suffices_evicts_nothing() -> None:
    f = Fake()

    async def gc() -> None:
        f.gc_runs += 1
        f.obs["nodefs.available"] = Observation(500 * MI, 1000 * MI)

    m = f.manager(Threshold("nodefs.available", "10%"), container_gc=gc)
    assert _run(m) is None
    assert f.gc_runs == 1 and f.evicted == []
    assert m.conditions == ["DiskPressure"]
    assert _run(m) is None
    assert m.conditions == ["DiskPressure"]  # held for the transition period
    f.now = 31.0
    _run(m)
    assert m.conditions == []


def test_reclaim_that_is_not_enough_then_evicts() -> None:
    f = Fake()

    async def gc() -> None:
        f.gc_runs += 1

    m = f.manager(Threshold("nodefs.available", "10%"), container_gc=gc)
    assert _run(m)["metadata"]["name"] == "be"
    assert f.gc_runs == 1
    assert f.evicted[0][1].startswith("The node was low on resource: ephemeral-storage. ")


def test_soft_threshold_waits_for_its_grace_period() -> None:
    f = Fake()
    m = f.manager(Threshold("memory.available", "1500Mi", timedelta(seconds=20), hard=False))
    assert _run(m) is None
    assert m.conditions == ["MemoryPressure"]
    f.now = 19.0
    assert _run(m) is None
    f.now = 20.0
    assert _run(m)["metadata"]["name"] == "be"


def test_minimum_reclaim_keeps_the_threshold_met() -> None:
    f = Fake()
    m = f.manager(Threshold("memory.available", "1500Mi", min_reclaim="200Mi"))
    _run(m)
    f.obs["memory.available"] = Observation(1600 * MI, 2000 * MI)  # above 1500, below 1700
    assert _run(m)["metadata"]["name"] == "bu"
    f.obs["memory.available"] = Observation(1800 * MI, 2000 * MI)
    f.pods = [_pod("x")]
    assert _run(m) is None


def test_static_pods_are_never_evicted() -> None:
    f = Fake()
    static = _pod("static")
    static["metadata"]["annotations"] = {"kubernetes.io/config.source": "file"}
    f.pods = [static]
    m = f.manager(Threshold("memory.available", "1500Mi"))
    assert _run(m) is None and f.evicted == []
    f.pods = [static, _pod("be")]
    assert _run(m)["metadata"]["name"] == "be"


def test_hard_evictions_stop_at_once_soft_ones_with_the_capped_grace() -> None:
    f = Fake()
    m = f.manager(Threshold("memory.available", "1500Mi"), max_pod_grace=20)
    _run(m)
    assert f.graces == [1]  # upstream's immediateEvictionGracePeriodSeconds
    f = Fake()
    f.pods[1]["spec"]["terminationGracePeriodSeconds"] = 60
    soft = Threshold("memory.available", "1500Mi", timedelta(seconds=5), hard=False)
    m = f.manager(soft, max_pod_grace=20)
    _run(m)
    f.now = 5.0
    _run(m)
    assert f.graces == [20]  # the pod's 60 s capped by evictionMaxPodGracePeriod
    short = {"spec": {"terminationGracePeriodSeconds": 3}}
    assert eviction_grace(soft, short, 20) == 3
    assert eviction_grace(soft, {"spec": {}}, 20) == 20
    assert eviction_grace(soft, short, 0) == 0


def test_allocatable_memory_signal_evicts_like_memory() -> None:
    f = Fake()
    f.obs["allocatableMemory.available"] = Observation(50 * MI, 1000 * MI)
    m = f.manager(Threshold("allocatableMemory.available", "100Mi"))
    assert _run(m)["metadata"]["name"] == "be"
    assert m.conditions == ["MemoryPressure"]
    assert f.evicted[0][1].startswith(
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
    )
