"""When the proxy syncs: changes are coalesced into at most one sync per min sync period, a full
sync comes first, periodically and after a failure (with back-off), and slow full syncs are
spaced out. Runs the engine's jobs on a worker thread; the pacing is the mode's (Traits).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from net.proxy.http import Health
from net.proxy.metrics import ProxyMetrics
from net.proxy.model import ProxyConfig
from net.proxy.proxier import Proxier

FAILURE_BACKOFF_CAP = 30.0
FAILURE_BACKOFF_BASE = 1.0
"""Seconds before the first retry of a failed sync when the min sync period is 0."""
FULL_SYNC_SHARE = 10
"""A periodic full sync waits at least this many times as long as the last one took."""


class SyncLoop:
    """One per daemon: wake() when the engine owes a sync, run() forever."""

    def __init__(
        self,
        proxier: Proxier,
        *,
        health: Health,
        metrics: ProxyMetrics,
        min_sync_period: float,
        full_period: float,
        partial_every: float | None,
        node_config: Callable[[tuple[str, ...]], ProxyConfig],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.proxier = proxier
        self.health = health
        self.metrics = metrics
        self.min_sync_period = min_sync_period
        self.full_period = full_period
        """Seconds between periodic full syncs (before stretching them when they are slow)."""
        self.partial_every = partial_every
        """Seconds between periodic partial syncs (nftables mode, as upstream's); None: none."""
        self.full_every = full_period
        """Seconds between periodic full syncs (stretched when they are slow)."""
        self.failures = 0
        self._node_config = node_config
        """The config from the node's addresses now, given the last known ones (blocking)."""
        self._clock = clock
        self._wake = asyncio.Event()
        self.synced = asyncio.Event()
        """Set by the first successful sync (the daemon then tells systemd it is ready)."""

    def wake(self) -> None:
        """A change is queued: note when, and wake the loop."""
        now = self._clock()
        self.metrics.last_queued_timestamp.set(now)
        self.health.queued(now)
        self._wake.set()

    async def run(self, ready: Sequence[asyncio.Event]) -> None:
        """After every event in `ready` (the informers listed): coalesce changes; at most one
        sync per min sync period; a full one every full period (and first, and after a
        failure). When full syncs are slow (iptables on nf_tables with thousands of Services)
        they are spaced to take at most 1/FULL_SYNC_SHARE of the time, so partial syncs of
        changes are not stuck behind them."""
        for event in ready:
            await event.wait()
        last_start = last_full = -float("inf")
        self.full_every = self.full_period
        while True:
            now = time.monotonic()
            due_full = now - last_full >= self.full_every
            tick = self.partial_every
            due_tick = tick is not None and now - last_start >= tick
            if not (self.proxier.dirty or due_full or due_tick):
                await self._idle(now, last_start, last_full)
                continue
            wait = last_start + self._gap() - now
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            last_start = time.monotonic()
            why = "startup" if last_full < 0 else "periodic" if due_full or due_tick else ""
            if await self._sync(full=due_full, reason=why):
                last_full = last_start

    async def _idle(self, now: float, last_start: float, last_full: float) -> None:
        """Sleep until the next periodic sync is due, or a change wakes the loop."""
        next_at = last_full + self.full_every
        if self.partial_every is not None:
            next_at = min(next_at, last_start + self.partial_every)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), next_at - now)

    def _gap(self) -> float:
        """Least time between two sync starts: the min sync period, backed off on failures
        (doubling from FAILURE_BACKOFF_BASE when the min sync period is 0, IPVS mode's default:
        else a sync that keeps failing is retried back to back)."""
        base = self.min_sync_period or FAILURE_BACKOFF_BASE
        gap = base * (2 ** min(self.failures, 5)) if self.failures else 0.0
        return max(self.min_sync_period, min(gap, FAILURE_BACKOFF_CAP))

    async def _sync(self, *, full: bool, reason: str) -> bool:
        """One sync; True when it was a full one that succeeded."""
        p = self.proxier
        full = full or p.pending.full
        if full:
            config = await asyncio.to_thread(self._node_config, p.config.node_ips)
            p.set_config(config, "node addresses changed")
        job = p.prepare(full=full, reason=reason)
        outcome = await asyncio.to_thread(p.run, job)
        record = p.finish(job, outcome)
        if record.error:
            self.failures += 1
            return False
        self.failures = 0
        if job.full:
            self.full_every = max(self.full_period, FULL_SYNC_SHARE * record.duration)
        self.health.updated(self._clock())
        self.synced.set()
        if p.dirty:
            self.health.queued(p.pending.since or self._clock())
        return job.full
