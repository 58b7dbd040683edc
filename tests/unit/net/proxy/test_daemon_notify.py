"""The proxy tells systemd READY=1 (Type=notify units) only after its first sync of the rules."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from .objects import Kernel
from .test_daemon_loop import _daemon, _prime, _running, _until


async def test_ready_after_the_first_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    kernel = Kernel()
    d = _daemon(kernel)
    announce = asyncio.create_task(d._announce_ready())
    try:
        async with _running(d):
            await asyncio.sleep(0.1)
            with pytest.raises(BlockingIOError):
                sock.recv(1000)  # nothing synced yet (no informer listed)
            _prime(d)
            await _until(lambda: len(kernel.restores) == 1)
            await asyncio.wait_for(announce, 3)
        message = sock.recv(1000).decode()
        assert message.startswith("READY=1\nSTATUS=Proxying Services for node n1")
    finally:
        announce.cancel()
        sock.close()
