"""The plain-HTTP health endpoint on healthzBindAddress:healthzPort (127.0.0.1:10248 by default;
port 0 turns it off), which kubeadm and supervisors poll. It answers from the same checks as the
node API's /healthz, handed in by the composition root; nothing else is served here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)
Health = Callable[[], tuple[bool, str]]
"""(healthy, reason): whether the agent's loops run and the runtime answers."""


def _answer(status: int, text: str) -> web.Response:
    return web.Response(
        status=status,
        text=text,
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def healthz_app(health: Health) -> web.Application:
    """/healthz ("ok", or 500 naming the failed check, as upstream's healthz handler; ?verbose
    lists the checks), /healthz/ping and /healthz/syncloop."""

    async def healthz(request: web.Request) -> web.Response:
        ok, reason = health()
        verbose = "verbose" in request.query
        if ok and not verbose:
            return _answer(200, "ok")
        sync = "[+]syncloop ok" if ok else f"[-]syncloop failed: {reason}"
        verdict = "healthz check passed" if ok else "healthz check failed"
        return _answer(200 if ok else 500, f"[+]ping ok\n{sync}\n{verdict}\n")

    async def ping(request: web.Request) -> web.Response:
        return _answer(200, "ok")

    async def syncloop(request: web.Request) -> web.Response:
        ok, reason = health()
        return _answer(200, "ok") if ok else _answer(500, f"internal server error: {reason}\n")

    app = web.Application()
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/healthz/ping", ping),
            web.get("/healthz/syncloop", syncloop),
        ]
    )
    return app


class HealthzServer:
    """Serves healthz_app on address:port until cancelled (a supervised task's body)."""

    def __init__(self, health: Health, *, address: str, port: int) -> None:
        self.app = healthz_app(health)
        self.address = address
        self.port = port
        self.listening = asyncio.Event()
        """Set once the socket listens."""

    async def run(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        host = None if self.address in ("0.0.0.0", "::") else self.address
        site = web.TCPSite(runner, host, self.port)
        try:
            await site.start()
            self.listening.set()
            log.info("serving /healthz on http://%s:%d", self.address or "*", self.port)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
