"""The proxy's HTTP endpoints (aiohttp): /healthz and /livez on the health port as kube-proxy
answers them; /metrics and the /debug/rules|explain|trace views on the metrics port. No rules here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class DebugSource(Protocol):
    """What the debug views read (the daemon provides it)."""

    def rules(self, *, with_text: bool) -> dict[str, Any]: ...

    def explain(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def trace(self, src: str, dst: str, port: int, proto: str) -> dict[str, Any]: ...


@dataclass
class Health:
    """When rules were last applied and since when changes wait; /healthz is computed from it."""

    timeout: float
    """Unhealthy when a queued change waits longer than this, or no sync succeeded for this long
    (upstream: twice the sync period)."""
    last_updated: float = 0.0
    """Wall time of the last successful sync; 0 before the first."""
    oldest_queued: float = 0.0
    """Wall time of the oldest change not yet applied; 0 when none waits."""
    node_eligible: bool = True
    """False once this node is being deleted (load balancers should stop using it)."""

    def queued(self, now: float) -> None:
        if not self.oldest_queued:
            self.oldest_queued = now

    def updated(self, now: float) -> None:
        self.last_updated = now
        self.oldest_queued = 0.0

    def healthy(self, now: float) -> bool:
        if not self.last_updated:
            return False
        if self.oldest_queued and now - self.oldest_queued > self.timeout:
            return False
        return now - self.last_updated <= self.timeout


def go_time(t: float) -> str:
    """A wall time as Go's time.Time.String() prints it (UTC)."""
    if not t:
        return "0001-01-01 00:00:00 +0000 UTC"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, indent=2) + "\n",
        status=status,
        content_type="application/json",
        headers={"X-Content-Type-Options": "nosniff"},
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _healthz(health: Health, clock: Callable[[], float]) -> Handler:
    async def healthz(_: web.Request) -> web.Response:
        now = clock()
        ok = health.healthy(now)
        body = {
            "lastUpdated": go_time(health.last_updated),
            "currentTime": go_time(now),
            "nodeEligible": health.node_eligible,
        }
        return _json(body, 200 if ok and health.node_eligible else 503)

    return healthz


def health_app(health: Health, clock: Callable[[], float] = time.time) -> web.Application:
    async def livez(_: web.Request) -> web.Response:
        now = clock()
        body = {"lastUpdated": go_time(health.last_updated), "currentTime": go_time(now)}
        return _json(body, 200 if health.healthy(now) else 503)

    app = web.Application()
    app.router.add_get("/healthz", _healthz(health, clock))
    app.router.add_get("/livez", livez)
    return app


def metrics_app(
    registry: CollectorRegistry, debug: DebugSource, health: Health, clock: Callable[[], float]
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def rules(request: web.Request) -> web.Response:
        with_text = request.query.get("text", "") in ("1", "true", "yes")
        return _json(debug.rules(with_text=with_text))

    async def explain(request: web.Request) -> web.Response:
        svc = request.query.get("svc", "")
        namespace, sep, name = svc.partition("/")
        if not sep or not namespace or not name:
            return _json({"error": f'svc "{svc}": expected NAMESPACE/NAME'}, 400)
        # blocking (it runs `conntrack -L`): off the loop the sync loop and informers share
        data = await asyncio.to_thread(debug.explain, namespace, name)
        if data is None:
            return _json({"error": f'service "{name}" in namespace "{namespace}" not found'}, 404)
        return _json(data)

    async def trace(request: web.Request) -> web.Response:
        q = request.query
        try:
            src = str(ipaddress.IPv4Address(q.get("src", "")))  # the rule model is IPv4 only
            dst = str(ipaddress.IPv4Address(q.get("dst", "")))
            port = int(q.get("port", ""))
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range")
        except ValueError as exc:
            return _json({"error": f"trace needs src=IPv4&dst=IPv4&port=N[&proto=tcp]: {exc}"}, 400)
        proto = q.get("proto", "tcp").upper()
        if proto not in ("TCP", "UDP", "SCTP"):
            return _json({"error": f'proto "{proto}": must be tcp, udp or sctp'}, 400)
        return _json(await asyncio.to_thread(debug.trace, src, dst, port, proto))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/rules", rules)
    app.router.add_get("/debug/explain", explain)
    app.router.add_get("/debug/trace", trace)
    app.router.add_get("/healthz", _healthz(health, clock))
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start `app` on host:port; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "0.0.0.0", port, reuse_address=True)
    await site.start()
    return runner
