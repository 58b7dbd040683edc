"""One probe worker on a fake clock: initial delay, period, thresholds, startup gating."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from kubelet.pods.model import ContainerID
from kubelet.prober.results import Outcome, Result
from kubelet.prober.runner import Target
from kubelet.prober.spec import Kind, parse_probe
from kubelet.prober.worker import ProbeWorker, WorkerHooks

from .fakes import FakeClock, ScriptedRunner

TARGET = Target(ContainerID("c1"), "10.0.0.2")


@dataclass
class Seen:
    started: bool = True
    verdicts: list[tuple[float, bool]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


@asynccontextmanager
async def running(
    kind: Kind, raw: dict[str, Any], *, started_at: float | None = 1000.0
) -> AsyncIterator[tuple[FakeClock, ScriptedRunner, Seen, ProbeWorker]]:
    clock = FakeClock()
    runner = ScriptedRunner(clock)
    seen = Seen()
    hooks = WorkerHooks(
        started=lambda: seen.started,
        verdict=lambda ok: seen.verdicts.append((clock.t, ok)),
        outcome=seen.outcomes.append,
    )
    spec = parse_probe(kind, {"exec": {"command": ["check"]}, **raw})
    w = ProbeWorker(spec, TARGET, started_at=started_at, runner=runner, clock=clock, hooks=hooks)
    task = asyncio.create_task(w.run())
    try:
        yield clock, runner, seen, w
    finally:
        task.cancel()


def _rel(times: list[float]) -> list[float]:
    return [t - 1000.0 for t in times]


async def test_first_probe_after_initial_delay_then_every_period() -> None:
    async with running(Kind.READINESS, {"initialDelaySeconds": 5, "periodSeconds": 3}) as (
        clock,
        runner,
        seen,
        _,
    ):
        await clock.advance(12)
        assert _rel(runner.times(Kind.READINESS)) == [5, 8, 11]
        assert seen.verdicts[0] == (1005.0, True)


async def test_initial_delay_counts_from_container_start() -> None:
    async with running(
        Kind.READINESS, {"initialDelaySeconds": 5, "periodSeconds": 10}, started_at=990.0
    ) as (clock, runner, _, _w):
        await clock.advance(1)
        assert _rel(runner.times(Kind.READINESS)) == [0]


async def test_readiness_failure_threshold_and_recovery() -> None:
    async with running(
        Kind.READINESS, {"periodSeconds": 1, "failureThreshold": 2, "successThreshold": 2}
    ) as (clock, runner, seen, _):
        runner.set(
            Kind.READINESS,
            Result.SUCCESS,
            Result.SUCCESS,
            Result.FAILURE,
            Result.FAILURE,
            Result.SUCCESS,
            Result.SUCCESS,
        )
        await clock.advance(5.5)
        assert [(t - 1000.0, ok) for t, ok in seen.verdicts] == [(1, True), (3, False), (5, True)]
        assert sum(o.result is Result.FAILURE for o in seen.outcomes) == 2


async def test_liveness_failure_reported_once_then_worker_stops() -> None:
    async with running(Kind.LIVENESS, {"periodSeconds": 2, "failureThreshold": 3}) as (
        clock,
        runner,
        seen,
        _,
    ):
        runner.set(Kind.LIVENESS, Result.FAILURE)
        await clock.advance(20)
        assert _rel(runner.times(Kind.LIVENESS)) == [0, 2, 4]
        assert seen.verdicts == [(1004.0, False)]


async def test_unknown_results_do_not_count() -> None:
    async with running(Kind.LIVENESS, {"periodSeconds": 1, "failureThreshold": 2}) as (
        clock,
        runner,
        seen,
        _,
    ):
        runner.set(Kind.LIVENESS, Result.FAILURE, Result.UNKNOWN, Result.UNKNOWN, Result.SUCCESS)
        await clock.advance(5)
        assert all(ok for _, ok in seen.verdicts)


async def test_liveness_waits_for_startup_and_trigger_runs_it_at_once() -> None:
    async with running(Kind.LIVENESS, {"periodSeconds": 10}) as (clock, runner, seen, w):
        seen.started = False
        await clock.advance(25)
        assert runner.times(Kind.LIVENESS) == []
        await clock.advance(2)  # t=27
        seen.started = True
        w.trigger()
        await clock.advance(0)
        assert _rel(runner.times(Kind.LIVENESS)) == [27]


async def test_startup_probe_stops_after_success() -> None:
    async with running(Kind.STARTUP, {"periodSeconds": 1, "failureThreshold": 30}) as (
        clock,
        runner,
        seen,
        _,
    ):
        seen.started = False
        runner.set(Kind.STARTUP, Result.FAILURE, Result.FAILURE, Result.SUCCESS)
        await clock.advance(10)
        assert _rel(runner.times(Kind.STARTUP)) == [0, 1, 2]
        assert seen.verdicts == [(1002.0, True)]


async def test_startup_failure_threshold() -> None:
    async with running(Kind.STARTUP, {"periodSeconds": 1, "failureThreshold": 4}) as (
        clock,
        runner,
        seen,
        _,
    ):
        seen.started = False
        runner.set(Kind.STARTUP, Result.FAILURE)
        await clock.advance(10)
        assert len(runner.times(Kind.STARTUP)) == 4
        assert seen.verdicts == [(1003.0, False)]
