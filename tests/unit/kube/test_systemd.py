"""sd_notify datagrams on real AF_UNIX sockets (a path in a temp dir and an abstract name), the
watchdog's interval rules, and the watchdog loop's ping/skip/retry behaviour on a fake clock.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kube import systemd


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2)
    try:
        yield sock, path
    finally:
        sock.close()


def test_notify_sends_one_datagram_per_call(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    n = systemd.Notifier(env={"NOTIFY_SOCKET": path})
    assert n.enabled
    n.ready("Running as node n1")
    n.status("Registered node n1")
    n.stopping()
    assert sock.recv(4096) == b"READY=1\nSTATUS=Running as node n1"
    assert sock.recv(4096) == b"STATUS=Registered node n1"
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket_name() -> None:
    name = f"pykubelet-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert systemd.notify_address({"NOTIFY_SOCKET": "@" + name}) == "\0" + name
        assert systemd.send("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    n = systemd.Notifier(env={})
    assert not n.enabled
    assert not n.notify("READY=1")
    assert not systemd.send("READY=1", {})


def test_a_gone_socket_is_logged_not_raised(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "missing.sock")}
    with pytest.raises(OSError):
        systemd.send("READY=1", env)
    assert not systemd.Notifier(env=env).notify("READY=1")


def test_watchdog_interval_is_half_the_timeout() -> None:
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == (
        15.0
    )


def test_watchdog_off_or_for_another_process() -> None:
    assert systemd.watchdog_interval({}, 42) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 42) is None


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"WATCHDOG_USEC": "abc"}, "not a number"),
        ({"WATCHDOG_USEC": "-5"}, "must be positive"),
        ({"WATCHDOG_USEC": "1000000"}, "too small"),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, "WATCHDOG_PID"),
    ],
)
def test_bad_watchdog_settings_are_refused(env: dict[str, str], words: str) -> None:
    with pytest.raises(systemd.WatchdogConfigError, match=words):
        systemd.watchdog_interval(env, 42)


def test_failed_check_names_the_first_failing_check() -> None:
    def boom() -> tuple[bool, str]:
        raise RuntimeError("stuck")

    assert systemd.failed_check([("ping", lambda: (True, ""))]) is None
    checks = [("ping", lambda: (True, "")), ("loops", lambda: (False, "pleg")), ("x", boom)]
    assert systemd.failed_check(checks) == "checker loops failed: pleg"
    assert systemd.failed_check([("x", boom)]) == "checker x failed: RuntimeError: stuck"


class _Clock:
    def __init__(self, rounds: int) -> None:
        self.slept: list[float] = []
        self.rounds = rounds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if len([s for s in self.slept if s == 15.0]) >= self.rounds:
            raise _Done


class _Done(Exception):
    pass


async def _run(
    checks: list[tuple[str, systemd.HealthCheck]], ping: Callable[[], bool], rounds: int
) -> _Clock:
    clock = _Clock(rounds)
    with pytest.raises(_Done):
        await systemd.watchdog_loop(checks, interval=15.0, ping=ping, sleep=clock.sleep)
    return clock


async def test_watchdog_pings_only_while_healthy() -> None:
    rounds = iter([True, False, True])
    pings: list[int] = []

    def check() -> tuple[bool, str]:
        return next(rounds), "runtime down"

    def ping() -> bool:
        pings.append(1)
        return True

    await _run([("loops", check)], ping, rounds=3)
    assert len(pings) == 2  # the unhealthy round sent nothing


async def test_watchdog_retries_a_failed_send_once() -> None:
    tries: list[int] = []

    def ping() -> bool:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionRefusedError("busy")
        return True

    clock = await _run([], ping, rounds=1)
    assert len(tries) == 2
    assert clock.slept == [1.0, 15.0]


async def test_watchdog_gives_up_after_two_tries() -> None:
    tries: list[int] = []

    def ping() -> bool:
        tries.append(1)
        raise ConnectionRefusedError("gone")

    clock = await _run([], ping, rounds=2)
    assert len(tries) == 4
    assert clock.slept == [1.0, 15.0, 1.0, 15.0]
