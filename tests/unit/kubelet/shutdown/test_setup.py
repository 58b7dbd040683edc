"""Building the shutdown manager from the KubeletConfiguration: off without a grace period, the
two-group split or shutdownGracePeriodByPodPriority, and pod kills through the workers' halt."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from kubelet.config.model import KubeletConfiguration, ShutdownGracePeriodByPodPriority
from kubelet.pods.model import PodUID, Waiting
from kubelet.pods.workers import PodWorkers
from kubelet.shutdown import setup
from kubelet.shutdown.planner import SYSTEM_CRITICAL_PRIORITY, PriorityGrace


class Workers:
    def __init__(self) -> None:
        self.halts: list[tuple[PodUID, Waiting, int]] = []
        self.stopped = asyncio.Event()

    def active_pods(self) -> list[dict[str, Any]]:
        return []

    def halt(self, uid: PodUID, failure: Waiting, grace: int) -> asyncio.Event:
        self.halts.append((uid, failure, grace))
        return self.stopped


async def _sync() -> None:
    return None


def _build(kc: KubeletConfiguration, workers: Workers, tmp_path: Path) -> Any:
    return setup.build(
        kc,
        workers=cast(PodWorkers, workers),
        sync_node_status=_sync,
        record=lambda message: None,
        root_dir=tmp_path,
    )


def test_off_without_a_grace_period(tmp_path: Path) -> None:
    assert _build(KubeletConfiguration(), Workers(), tmp_path) is None


def test_grace_periods_and_by_priority(tmp_path: Path) -> None:
    kc = dataclasses.replace(
        KubeletConfiguration(),
        shutdown_grace_period=timedelta(seconds=30),
        shutdown_grace_period_critical_pods=timedelta(seconds=10),
    )
    manager = _build(kc, Workers(), tmp_path)
    assert manager.periods == [PriorityGrace(0, 20), PriorityGrace(SYSTEM_CRITICAL_PRIORITY, 10)]
    by = dataclasses.replace(
        KubeletConfiguration(),
        shutdown_grace_period_by_pod_priority=(
            ShutdownGracePeriodByPodPriority(priority=100000, shutdown_grace_period_seconds=5),
            ShutdownGracePeriodByPodPriority(priority=0, shutdown_grace_period_seconds=7),
        ),
    )
    assert _build(by, Workers(), tmp_path).periods == [
        PriorityGrace(0, 7),
        PriorityGrace(100000, 5),
    ]


async def test_kill_halts_the_pod_and_waits_until_it_stopped(tmp_path: Path) -> None:
    kc = dataclasses.replace(KubeletConfiguration(), shutdown_grace_period=timedelta(seconds=4))
    workers = Workers()
    manager = _build(kc, workers, tmp_path)
    kill = asyncio.create_task(manager.hooks.kill({"metadata": {"uid": "u1"}}, 3))
    await asyncio.sleep(0.05)
    assert not kill.done()
    assert workers.halts == [
        (
            "u1",
            Waiting("Terminated", "Pod was terminated in response to imminent node shutdown."),
            3,
        )
    ]
    workers.stopped.set()
    await asyncio.wait_for(kill, 1)
