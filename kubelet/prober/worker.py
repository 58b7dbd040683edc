"""One probe worker: the loop for one (pod, container instance, probe kind), as upstream's
prober worker. It owns timing and thresholds; it must not touch the pod's results or events
itself (it hands verdicts and outcomes to the manager's callbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kubelet.prober.results import Outcome, ThresholdCounter
from kubelet.prober.runner import Target
from kubelet.prober.spec import Kind, ProbeSpec


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (container start times are on this scale)."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ProbeRunner(Protocol):
    async def run(self, spec: ProbeSpec, target: Target) -> Outcome: ...


@dataclass(frozen=True)
class WorkerHooks:
    """How a worker talks back to its manager."""

    started: Callable[[], bool]
    """Whether the container counts as started (its startup probe, if any, succeeded)."""
    verdict: Callable[[bool], None]
    """A new cached result (the threshold was reached)."""
    outcome: Callable[[Outcome], None]
    """Every attempt's outcome (for events)."""


class ProbeWorker:
    """Probes every periodSeconds; the first probe waits for initialDelaySeconds counted from
    the container's start; liveness and readiness wait for the startup probe. A liveness or
    startup failure ends the worker (the container is about to be replaced), so does a startup
    success."""

    def __init__(
        self,
        spec: ProbeSpec,
        target: Target,
        *,
        started_at: float | None,
        runner: ProbeRunner,
        clock: Clock,
        hooks: WorkerHooks,
        jitter: float = 0.0,
    ) -> None:
        self.spec = spec
        self.target = target
        self.started_at = started_at
        self.counter = ThresholdCounter(spec)
        self._runner = runner
        self._clock = clock
        self._hooks = hooks
        self._jitter = jitter
        self._trigger = asyncio.Event()

    def trigger(self) -> None:
        """Probe now instead of at the next period (the startup probe just succeeded)."""
        self._trigger.set()

    async def run(self) -> None:
        if self._jitter > 0:
            await self._wait(self._jitter)
        while True:
            began = self._clock.monotonic()
            wait = await self.step()
            if wait is None:
                return
            if wait < 0:
                wait = self.spec.period - (self._clock.monotonic() - began)
            await self._wait(max(0.0, wait))

    async def step(self) -> float | None:
        """One tick. Returns None to stop, a delay to wait before the next tick, or -1 for
        the rest of the period."""
        kind = self.spec.kind
        started = self._hooks.started()
        if kind is Kind.STARTUP and started:
            return None
        if kind is not Kind.STARTUP and not started:
            return -1
        if self.started_at is not None:
            remaining = self.started_at + self.spec.initial_delay - self._clock.now()
            if remaining > 0:
                return min(remaining, float(self.spec.period))
        outcome = await self._runner.run(self.spec, self.target)
        self._hooks.outcome(outcome)
        verdict = self.counter.observe(outcome.result)
        if verdict is None:
            return -1
        self._hooks.verdict(verdict)
        if kind is Kind.STARTUP or (kind is Kind.LIVENESS and not verdict):
            return None
        return -1

    async def _wait(self, seconds: float) -> None:
        """Sleep on the clock, cut short by trigger()."""
        if self._trigger.is_set():
            self._trigger.clear()
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._trigger.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                t.cancel()
            for t in (sleeper, waker):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        self._trigger.clear()
