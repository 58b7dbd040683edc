"""The node's HTTPS API on :10250: routes, the authentication/authorization middleware, error
answers and the listening socket. Handlers delegate to logs/streaming/stats; no pod logic here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cri.client import RuntimeClient
from cri.errors import CRIError
from cri.errors import NotFound as CRINotFound
from kube.jsontypes import JsonObject
from kubelet import metrics
from kubelet.server import logs, stats, streaming
from kubelet.server.auth import Authenticator, Authorizer
from kubelet.server.servingcert import ServingCertManager
from kubelet.server.targets import HTTPError, PodRef, check_spec

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_HEADER_BYTES = 8190
"""aiohttp's per-line and per-header limits: anything longer is answered with 400."""


@dataclass(frozen=True)
class Sources:
    """What the API shows, handed in by the composition root."""

    node: str
    runtime: RuntimeClient
    health: Callable[[], tuple[bool, str]]
    """(healthy, reason): whether the agent's loops run and the runtime answers."""
    pods: Callable[[], Awaitable[list[JsonObject]]]
    """The pods this node runs (API objects)."""
    config: Callable[[], JsonObject]
    """The KubeletConfiguration in its YAML/JSON form."""


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


class Routes:
    """The handlers; every one is reached only after the middleware let the caller through."""

    def __init__(self, src: Sources) -> None:
        self.src = src
        self.node_cpu = stats.NodeCPU()
        self.container_cpu = stats.ContainerCPURates()
        self.boot = stats.boot_time()
        metrics.NODE_NAME.labels(node=src.node).set(1)

    def table(self) -> list[web.RouteDef]:
        pod = "/{namespace}/{pod}"
        ctr = pod + "/{container}"
        streams: list[web.RouteDef] = []
        for method in ("GET", "POST"):
            streams += [
                web.route(method, "/exec" + ctr, self.exec_),
                web.route(method, "/exec" + pod + "/{uid}/{container}", self.exec_),
                web.route(method, "/attach" + ctr, self.attach),
                web.route(method, "/attach" + pod + "/{uid}/{container}", self.attach),
                web.route(method, "/portForward" + pod, self.port_forward),
                web.route(method, "/portForward" + pod + "/{uid}", self.port_forward),
            ]
        return [
            web.get("/healthz", self.healthz),
            web.get("/pods", self.pods),
            web.get("/configz", self.configz),
            web.get("/metrics", self.metrics),
            web.get("/metrics/resource", self.resource),
            web.get("/stats/summary", self.summary),
            web.get("/containerLogs" + ctr, self.logs),
            *streams,
        ]

    @staticmethod
    def _pod(request: web.Request) -> PodRef:
        return PodRef(request.match_info["namespace"], request.match_info["pod"])

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        ok, reason = self.src.health()
        return _text(200, "ok") if ok else _text(500, f"[-]syncloop failed: {reason}")

    async def pods(self, request: web.Request) -> web.StreamResponse:
        items = await self.src.pods()
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        return web.json_response(body)

    async def configz(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"kubeletconfig": self.src.config()})

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        try:
            pods, containers = await stats.running_counts(self.src.runtime)
            metrics.RUNNING_PODS.set(pods)
            for state, n in containers.items():
                metrics.RUNNING_CONTAINERS.labels(container_state=state).set(n)
        except CRIError as e:
            log.warning("metrics: runtime counts unavailable: %s", e)
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _summary(self) -> JsonObject:
        return await stats.summary(
            self.src.runtime, self.src.node, self.node_cpu, self.boot, self.container_cpu
        )

    async def summary(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self._summary())

    async def resource(self, request: web.Request) -> web.StreamResponse:
        body = stats.resource_metrics(await self._summary())
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        container = request.match_info["container"]
        await check_spec(self.src.pods, self._pod(request), container)
        return await logs.container_logs(request, self.src.runtime, self._pod(request), container)

    async def exec_(self, request: web.Request) -> web.StreamResponse:
        container = request.match_info["container"]
        await check_spec(self.src.pods, self._pod(request), container)
        return await streaming.exec_(request, self.src.runtime, self._pod(request), container)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        container = request.match_info["container"]
        await check_spec(self.src.pods, self._pod(request), container)
        return await streaming.attach(request, self.src.runtime, self._pod(request), container)

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        await check_spec(self.src.pods, self._pod(request), None)
        return await streaming.port_forward(request, self.src.runtime, self._pod(request))


def auth_middleware(authn: Authenticator, authz: Authorizer) -> Any:
    """401 for unknown callers, 403 for callers the authorizer refuses; errors as text."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        user = await authn.authenticate(peercert, request.headers.get("Authorization"))
        if user is None:
            return _text(401, "Unauthorized")
        denied = await authz.authorize(user, request.method, request.path)
        if denied is not None:
            log.info("denied %s %s for user=%s", request.method, request.path, user.name)
            return _text(403, denied)
        try:
            return await handler(request)
        except HTTPError as e:
            return _text(e.status, e.message)
        except CRINotFound as e:
            return _text(404, str(e))
        except CRIError as e:
            log.warning("%s %s: runtime error: %s", request.method, request.path, e)
            return _text(500, f"container runtime: {e}")

    return middleware


def make_app(routes: Routes, authn: Authenticator, authz: Authorizer) -> web.Application:
    app = web.Application(middlewares=[auth_middleware(authn, authz)], client_max_size=1024**2)
    app.add_routes(routes.table())
    return app


class KubeletServer:
    """Serves the app on address:port with TLS until cancelled (a supervised task's body)."""

    def __init__(
        self,
        app: web.Application,
        *,
        address: str,
        port: int,
        tls: ssl.SSLContext,
        cert_manager: ServingCertManager | None = None,
    ) -> None:
        self.app = app
        self.address = address
        self.port = port
        self.tls = tls
        self.cert_manager = cert_manager
        """Set with serverTLSBootstrap: keeps `tls` supplied with a CSR-issued certificate."""
        self.listening = asyncio.Event()
        """Set once the socket listens (the agent then tells systemd it is ready)."""

    async def run(self) -> None:
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )
        await runner.setup()
        host = None if self.address in ("0.0.0.0", "::") else self.address
        site = web.TCPSite(runner, host, self.port, ssl_context=self.tls, shutdown_timeout=1)
        try:
            await site.start()
            self.listening.set()
            log.info("serving the node API on %s:%d", self.address or "*", self.port)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
