"""The real agent speaks systemd's notify protocol to a socket of ours, as systemd would see it
with Type=notify and WatchdogSec=4s: READY=1 once it serves, WATCHDOG=1 about every 2 s, none
while it is stopped (SIGSTOP: systemd would kill and restart it), again after SIGCONT, and
STOPPING=1 on SIGTERM. systemd itself is not PID 1 here; the VM test runs the unit for real.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec

from .conftest import NODE


def _messages(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    """Datagrams received within `seconds`, with their arrival times."""
    out, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            break
    return out


@pytest.fixture(scope="module")
def notified(
    cluster_spec: ClusterSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[socket.socket, process.Daemon]]:
    path = Path(tmp_path_factory.mktemp("notify")) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    daemon = cluster.agent_daemon(cluster_spec, NODE)
    patch = pytest.MonkeyPatch()
    patch.setenv("NOTIFY_SOCKET", str(path))
    patch.setenv("WATCHDOG_USEC", "4000000")
    try:
        process.stop(daemon)
        cluster.start_node(cluster_spec, NODE, wait=False)
        yield sock, daemon
    finally:
        patch.undo()
        pid = daemon.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        process.stop(daemon)
        sock.close()


def test_ready_then_watchdog_pings_only_while_running(
    notified: tuple[socket.socket, process.Daemon],
) -> None:
    sock, daemon = notified
    seen: list[tuple[float, str]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(m.startswith("READY=1") for _, m in seen):
        seen += _messages(sock, 1)
    assert any(m.startswith("READY=1\nSTATUS=Running as node") for _, m in seen), seen
    pings = [t for t, m in _messages(sock, 7) if m == "WATCHDOG=1"]
    assert len(pings) >= 3, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(1.0 < g < 3.0 for g in gaps), gaps  # every WATCHDOG_USEC/2 = 2 s

    pid = daemon.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        _messages(sock, 0.3)  # what it sent before it stopped
        stopped = [m for _, m in _messages(sock, 5) if m == "WATCHDOG=1"]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stopped == []  # longer than WatchdogSec: systemd would restart the agent
    assert any(m == "WATCHDOG=1" for _, m in _messages(sock, 5))

    os.kill(pid, signal.SIGTERM)
    assert any(m.startswith("STOPPING=1") for _, m in _messages(sock, 10))
