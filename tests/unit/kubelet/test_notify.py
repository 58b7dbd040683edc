"""The agent's notifications: READY=1 only once every server listens, then a STATUS line when
the Node is registered; a bad WATCHDOG_USEC stops the agent."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from kube import systemd
from kubelet import notify


async def test_ready_waits_for_the_servers_then_status_on_registration(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    notifier = systemd.Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    api, healthz, registered = asyncio.Event(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        notify.announce(notifier, node="n1", listening=[api, healthz], registered=registered)
    )
    try:
        await asyncio.sleep(0.05)
        assert sock.recv(500).startswith(b"STATUS=Starting node n1")
        api.set()
        await asyncio.sleep(0.05)
        with pytest.raises(BlockingIOError):
            sock.recv(500)  # the second server does not listen yet
        healthz.set()
        await asyncio.sleep(0.05)
        assert sock.recv(500).startswith(b"READY=1\nSTATUS=Running as node n1")
        registered.set()
        await asyncio.wait_for(task, 2)
        assert sock.recv(500) == b"STATUS=Running as node n1; registered"
    finally:
        task.cancel()
        sock.close()


def test_a_bad_watchdog_setting_stops_the_agent() -> None:
    with pytest.raises(SystemExit, match="configure watchdog"):
        notify.watchdog_interval(systemd.Notifier(env={"WATCHDOG_USEC": "0"}))
    assert notify.watchdog_interval(systemd.Notifier(env={"WATCHDOG_USEC": "30000000"})) == 15.0
