"""The eviction manager loop (every 10 s, as upstream): observe signals, decide thresholds and
node conditions, reclaim node-level resources first, then evict one ranked pod per round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from kube.jsontypes import JsonMap
from kubelet import events as ev
from kubelet.eviction import thresholds as th
from kubelet.eviction.admit import EVICTED, admit_under_pressure
from kubelet.eviction.gc import ImageGC
from kubelet.eviction.metrics import EVICTIONS
from kubelet.eviction.ranking import RANKERS, Stats
from kubelet.eviction.thresholds import Observation, Threshold
from kubelet.pods.admission import Rejection

log = logging.getLogger(__name__)
MONITORING_INTERVAL = 10.0
IMAGE_GC_PERIOD = 300.0
IMMEDIATE_GRACE_SECONDS = 1
"""Upstream's immediateEvictionGracePeriodSeconds: what hard evictions stop pods with."""
Reclaim = Callable[[], Awaitable[None]]


def eviction_grace(t: Threshold, pod: JsonMap, max_pod_grace: int) -> int:
    """Seconds the evicted pod's containers get to stop: at once for a hard threshold; for a
    soft one evictionMaxPodGracePeriod, or the pod's terminationGracePeriodSeconds if less."""
    if t.hard:
        return IMMEDIATE_GRACE_SECONDS
    own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return min(max_pod_grace, own) if isinstance(own, int) else max_pod_grace


def _static(pod: JsonMap) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get("kubernetes.io/config.source") == "file")


@dataclass
class EvictionManager:
    thresholds: Sequence[Threshold]
    observe: Callable[[], dict[str, Observation]]
    active_pods: Callable[[], Sequence[JsonMap]]
    stats: Stats
    evict: Callable[[JsonMap, str, int], None]
    """Kill the pod with a grace period (seconds) and mark it Failed/Evicted with the message
    (the pod workers)."""
    record: Callable[[ev.PodEvent], None]
    image_gc: ImageGC | None = None
    container_gc: Reclaim | None = None
    imagefs_is_nodefs: bool = True
    transition_period: timedelta = timedelta(minutes=5)
    max_pod_grace: int = 0
    """evictionMaxPodGracePeriod (soft evictions)."""
    interval: float = MONITORING_INTERVAL
    clock: Callable[[], float] = time.monotonic
    conditions: list[str] = field(default_factory=list)
    _met: list[Threshold] = field(default_factory=list)
    _first_observed: dict[Threshold, float] = field(default_factory=dict)
    _last_observed: dict[str, float] = field(default_factory=dict)

    # ---- what the rest of the agent asks ---------------------------------------------------
    def admit(self, pod: JsonMap) -> Rejection | None:
        return admit_under_pressure(pod, self.conditions)

    def pressure(self, condition: str) -> bool:
        return condition in self.conditions

    # ---- one round ---------------------------------------------------------------------------
    def _met_now(self, observations: Mapping[str, Observation]) -> list[Threshold]:
        met = th.met(self.thresholds, observations)
        if self._met:
            met = th.merge(met, th.met(self._met, observations, enforce_min_reclaim=True))
        return met

    def _reclaimers(self, signal: str) -> list[Reclaim]:
        """Upstream's node reclaim funcs: disk signals get dead-container GC, and image GC too
        for imagefs signals or when images live on nodefs; memory and pids get none."""
        if th.CONDITION.get(signal) != th.DISK_PRESSURE:
            return []
        gc: list[Reclaim] = []
        if self.container_gc is not None:
            gc.append(self.container_gc)
        images = self.image_gc
        if images is not None and (
            signal in (th.IMAGEFS_AVAILABLE, th.IMAGEFS_INODES) or self.imagefs_is_nodefs
        ):

            async def all_unused() -> None:
                await images.free(1 << 62)

            gc.append(all_unused)
        return gc

    async def _reclaim_node(self, signal: str) -> bool:
        """Node-level reclaim for the signal; True when it relieved every threshold."""
        funcs = self._reclaimers(signal)
        for f in funcs:
            try:
                await f()
            except Exception as e:  # a failed GC must not stop eviction
                log.warning("eviction: node-level reclaim failed: %s", e)
        if not funcs:
            return False
        if self._met_now(self.observe()):
            return False
        log.info("eviction: able to reduce resource pressure without evicting pods (%s)", signal)
        return True

    async def synchronize(self) -> JsonMap | None:
        """One round; returns the pod evicted, if any."""
        observations = self.observe()
        now = self.clock()
        met = self._met_now(observations)
        self._first_observed = th.first_observed(met, self._first_observed, now)
        self._last_observed = th.last_observed(th.conditions(met), self._last_observed, now)
        conds = th.observed_since(self._last_observed, self.transition_period, now)
        if conds != self.conditions:
            log.info("eviction: node conditions now %s", conds or "none")
        self.conditions = conds
        self._met = th.grace_met(self._first_observed, now)
        if not self._met:
            return None
        target = th.by_priority(self._met)[0]
        resource = th.RESOURCE.get(target.signal, "")
        if await self._reclaim_node(target.signal):
            return None
        rank = RANKERS.get(resource)
        if rank is None:
            return None
        # static pods count as critical upstream and are never evicted (not re-admitted after)
        pods = [p for p in rank(self.active_pods(), self.stats) if not _static(p)]
        if not pods:
            log.warning("eviction: %s under pressure but no pod to evict", target.signal)
            return None
        pod = pods[0]
        message = th.eviction_message(target, observations.get(target.signal))
        meta = pod.get("metadata") or {}
        log.info(
            "eviction: evicting pod %s/%s uid=%s for %s",
            meta.get("namespace"),
            meta.get("name"),
            meta.get("uid"),
            target.signal,
        )
        self.record(
            ev.PodEvent(
                str(meta.get("namespace") or "default"),
                str(meta.get("name") or ""),
                str(meta.get("uid") or ""),
                ev.WARNING,
                EVICTED,
                message,
            )
        )
        self.evict(pod, message, eviction_grace(target, pod, self.max_pod_grace))
        EVICTIONS.labels(eviction_signal=target.signal).inc()
        return pod

    async def run(self) -> None:
        while True:
            try:
                await self.synchronize()
            except OSError as e:
                log.warning("eviction: observing signals failed: %s", e)
            await asyncio.sleep(self.interval)

    async def image_gc_loop(
        self, high_percent: int, low_percent: int, imagefs: Callable[[], Observation]
    ) -> None:
        """Periodic image GC: above imageGCHighThresholdPercent of the image filesystem used,
        free down to imageGCLowThresholdPercent (100 disables it)."""
        while self.image_gc is not None and high_percent < 100:
            o = imagefs()
            used = o.capacity - o.available
            if o.capacity and used * 100 > high_percent * o.capacity:
                want = used - o.capacity * low_percent // 100
                freed = await self.image_gc.free(want)
                log.info(
                    "image GC: usage above %d%%, freed %d of %d bytes", high_percent, freed, want
                )
            await asyncio.sleep(IMAGE_GC_PERIOD)
