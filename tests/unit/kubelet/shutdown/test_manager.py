"""The shutdown manager on a private dbus-daemon with the FAKE stand-in logind: it raises
InhibitDelayMaxSec, holds the lock, and on PrepareForShutdown(true) refuses pods, reports
not ready, stops regular pods before critical ones with capped grace, then releases the lock;
a cancellation takes the lock again. Pod kills are recorded by a stand-in hook here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelet.shutdown import manager as shutdown
from kubelet.shutdown import planner
from tests.fakes.logind import StandInLogind, dbus_daemon, private_bus

from .test_planner import CRITICAL, pod

pytestmark = pytest.mark.skipif(
    dbus_daemon() is None, reason="dbus-daemon is not installed (Debian package dbus-daemon)"
)


class Node:
    """What the agent hands the manager, recorded."""

    def __init__(self, pods: list[dict[str, Any]], stop_seconds: float = 0.05) -> None:
        self.pods = pods
        self.stop_seconds = stop_seconds
        self.kills: list[tuple[str, int, float]] = []
        self.stopped: list[tuple[str, float]] = []
        self.events: list[str] = []
        self.status_syncs = 0

    async def kill(self, pod: planner.Json, grace: int) -> None:
        name = pod["metadata"]["name"]
        self.kills.append((name, grace, time.monotonic()))
        await asyncio.sleep(self.stop_seconds)
        self.stopped.append((name, time.monotonic()))

    async def sync(self) -> None:
        self.status_syncs += 1

    def hooks(self) -> shutdown.Hooks:
        return shutdown.Hooks(lambda: list(self.pods), self.kill, self.sync, self.events.append)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    with private_bus(tmp_path) as address:
        yield address


@pytest.fixture
def logind(bus: str, tmp_path: Path) -> Iterator[StandInLogind]:
    with StandInLogind(bus, conf_dir=tmp_path / "logind.conf.d") as fake:
        yield fake


async def _until(cond: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def running(
    bus: str, logind: StandInLogind, tmp_path: Path
) -> AsyncIterator[tuple[shutdown.ShutdownManager, Node]]:
    node = Node(
        [
            pod("critical", priority=CRITICAL, grace=30),
            pod("web", grace=30),
            pod("quick", grace=1),
        ]
    )
    m = shutdown.ShutdownManager(
        planner.priority_periods(3, 1),
        node.hooks(),
        state_dir=tmp_path,
        bus_address=bus,
        logind_conf_dir=tmp_path / "logind.conf.d",
    )
    logind.inhibit_delay_usec = 1_000_000  # shorter than the 3 s requested
    task = asyncio.create_task(m.run())
    try:
        await _until(lambda: len(logind.held()) == 1)
        yield m, node
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        m.lock.release()


async def test_short_logind_delay_is_raised_with_a_drop_in(
    running: tuple[shutdown.ShutdownManager, Node], logind: StandInLogind, tmp_path: Path
) -> None:
    del running
    assert logind.reloads == 1
    assert logind.inhibit_delay_usec == 3_000_000
    text = (tmp_path / "logind.conf.d" / "99-kubelet.conf").read_text()
    assert "InhibitDelayMaxSec=3" in text


async def test_shutdown_stops_regular_pods_then_critical_then_releases(
    running: tuple[shutdown.ShutdownManager, Node], logind: StandInLogind, tmp_path: Path
) -> None:
    m, node = running
    assert m.admit(pod("new")) is None and m.ready_error() is None
    logind.prepare_for_shutdown(True)
    await _until(lambda: m.shutting_down)
    rejection = m.admit(pod("new"))
    assert rejection is not None
    assert (rejection.reason, rejection.message) == (
        "NodeShutdown",
        "Pod was rejected as the node is shutting down.",
    )
    assert m.ready_error() == "node is shutting down"
    await asyncio.wait_for(m.processed.wait(), 10)
    assert [(name, grace) for name, grace, _ in node.kills] == [
        ("web", 2),
        ("quick", 1),
        ("critical", 1),
    ]
    critical_started = node.kills[2][2]
    assert all(at <= critical_started for name, at in node.stopped if name != "critical")
    assert logind.held() == []
    assert node.events == ["Shutdown manager detected shutdown event"]
    assert node.status_syncs == 1
    state = json.loads((tmp_path / "graceful_node_shutdown_state").read_text())
    assert state["startTime"] <= state["endTime"] and state["endTime"].endswith("Z")


async def test_a_group_that_does_not_stop_in_time_is_left_behind(
    bus: str, logind: StandInLogind, tmp_path: Path
) -> None:
    node = Node([pod("slow", grace=30), pod("sys", priority=CRITICAL)], stop_seconds=30)
    m = shutdown.ShutdownManager(
        [planner.PriorityGrace(0, 1), planner.PriorityGrace(CRITICAL, 1)],
        node.hooks(),
        state_dir=tmp_path,
        bus_address=bus,
        logind_conf_dir=tmp_path / "conf",
    )
    logind.inhibit_delay_usec = 10_000_000
    task = asyncio.create_task(m.run())
    try:
        await _until(lambda: len(logind.held()) == 1)
        started = time.monotonic()
        logind.prepare_for_shutdown(True)
        await asyncio.wait_for(m.processed.wait(), 10)
        assert 1.9 < time.monotonic() - started < 4
        assert [name for name, _, _ in node.kills] == ["slow", "sys"]
        assert logind.held() == []
        assert logind.reloads == 0  # 10 s already covers the 2 s requested
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_cancellation_takes_the_lock_again(
    running: tuple[shutdown.ShutdownManager, Node], logind: StandInLogind
) -> None:
    m, node = running
    node.pods.clear()
    logind.prepare_for_shutdown(True)
    await asyncio.wait_for(m.processed.wait(), 5)
    assert logind.held() == []
    logind.prepare_for_shutdown(False)
    await _until(lambda: len(logind.held()) == 1)
    assert not m.shutting_down and m.admit(pod("new")) is None
    assert node.events[-1] == "Shutdown manager detected shutdown cancellation"


async def test_losing_the_bus_is_retried(tmp_path: Path) -> None:
    node = Node([])
    with private_bus(tmp_path) as address:
        m = shutdown.ShutdownManager(
            planner.priority_periods(2, 1), node.hooks(), state_dir=tmp_path, bus_address=address
        )
        with StandInLogind(address) as fake:
            fake.inhibit_delay_usec = 10_000_000
            task = asyncio.create_task(m.run())
            await _until(lambda: len(fake.held()) == 1)
            held_fd = m.lock.fd
    try:
        await asyncio.sleep(0.3)
        assert m.lock.fd == held_fd  # still held while the bus is away (logind keeps it)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        m.lock.release()


def test_metrics_come_back_from_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "graceful_node_shutdown_state"
    state = {"startTime": "2026-12-08T10:00:00Z", "endTime": "0001-01-01T00:00:00Z"}
    path.write_text(json.dumps(state))
    shutdown.END_TIME.set(0)
    shutdown.load_metrics(path)
    assert shutdown.START_TIME._value.get() == 1796724000
    assert shutdown.END_TIME._value.get() == 0
