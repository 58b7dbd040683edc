"""The plain-HTTP /healthz on healthzPort: "ok" while the agent is healthy, 500 naming the failed
check otherwise (upstream's healthz handler format), served on a real socket."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

from kubelet.server.healthz import HealthzServer

STATE = {"ok": True, "reason": ""}


def health() -> tuple[bool, str]:
    return bool(STATE["ok"]), str(STATE["reason"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_healthz_answers_from_the_agents_checks() -> None:
    port = free_port()
    server = HealthzServer(health, address="127.0.0.1", port=port)
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.listening.wait(), 5)
        base = f"http://127.0.0.1:{port}"
        STATE.update(ok=True, reason="")
        assert await asyncio.to_thread(get, base + "/healthz") == (200, "ok")
        verbose = await asyncio.to_thread(get, base + "/healthz?verbose")
        assert verbose == (200, "[+]ping ok\n[+]syncloop ok\nhealthz check passed\n")
        STATE.update(ok=False, reason="loops not running: pleg")
        assert await asyncio.to_thread(get, base + "/healthz") == (
            500,
            "[+]ping ok\n[-]syncloop failed: loops not running: pleg\nhealthz check failed\n",
        )
        assert await asyncio.to_thread(get, base + "/healthz/ping") == (200, "ok")
        assert (await asyncio.to_thread(get, base + "/healthz/syncloop"))[0] == 500
        assert (await asyncio.to_thread(get, base + "/metrics"))[0] == 404
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
