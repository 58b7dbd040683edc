"""Fakes for the prober's unit tests: a clock with timers the test advances, a scripted probe
runner and an event sink. Test-only; nothing here touches the network or a runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from kubelet.events import PodEvent
from kubelet.prober.results import Outcome, Result
from kubelet.prober.runner import Target
from kubelet.prober.spec import Kind, ProbeSpec


async def settle(rounds: int = 30) -> None:
    """Let every ready task run until things are quiet."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    """Time stands still until `advance`; sleepers wake in deadline order."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + seconds, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while True:
            await settle()
            due = [d for d, f in self._sleepers if not f.done()]
            if not due or min(due) > end:
                break
            self.t = max(self.t, min(due))
            for d, f in self._sleepers:
                if d <= self.t and not f.done():
                    f.set_result(None)
            self._sleepers = [(d, f) for d, f in self._sleepers if not f.done()]
        self.t = end
        await settle()


@dataclass
class ScriptedRunner:
    """Answers each probe kind from a script (the last entry repeats); records call times."""

    clock: FakeClock
    script: dict[Kind, list[Result]] = field(default_factory=dict)
    calls: list[tuple[Kind, float, Target]] = field(default_factory=list)
    detail: Callable[[Kind], str] = lambda kind: f"{kind} says no"

    def set(self, kind: Kind, *results: Result) -> None:
        self.script[kind] = list(results)

    async def run(self, spec: ProbeSpec, target: Target) -> Outcome:
        self.calls.append((spec.kind, self.clock.t, target))
        results = self.script.get(spec.kind) or [Result.SUCCESS]
        result = results.pop(0) if len(results) > 1 else results[0]
        return Outcome(result, "" if result is Result.SUCCESS else self.detail(spec.kind))

    def times(self, kind: Kind) -> list[float]:
        return [t for k, t, _ in self.calls if k is kind]


@dataclass
class Events:
    items: list[PodEvent] = field(default_factory=list)

    def record(self, ev: PodEvent) -> None:
        self.items.append(ev)

    def messages(self) -> list[str]:
        return [f"{e.reason}: {e.message}" for e in self.items]
