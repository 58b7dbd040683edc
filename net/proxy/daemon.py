"""`pykubelet proxy`'s composition root: the mode's backend (chosen once, net.proxy.modes) under the
sync engine; informers for Services, EndpointSlices and Nodes feed it; the sync loop, node routes,
HTTP servers and debug views around it. Rules stay in the kernel on exit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
import time
from collections.abc import Callable

from aiohttp import web

from kube import facts, systemd
from kube.apiserver import NODES, SYNC, ApiClient, InformerEvent, KubeconfigError, watch_forever
from kube.apiserver.requests import ENDPOINTSLICES, SERVICES, Resource
from kube.supervise import spawn
from net.proxy import conntrack, http, model, modes
from net.proxy.backend import ProxyBackend, Unsupported
from net.proxy.debug import DebugViews
from net.proxy.history import History
from net.proxy.host import ensure_route_localnet, local_ipv4
from net.proxy.metrics import ProxyMetrics
from net.proxy.nodes import NodeCache
from net.proxy.proxier import Proxier
from net.proxy.settings import EXIT_CONFIG, EXIT_UNSUPPORTED, ProxySettings, split_host_port
from net.proxy.syncloop import SyncLoop

__all__ = ["EXIT_UNSUPPORTED", "ProxyDaemon", "main"]

log = logging.getLogger(__name__)


def localhost_nodeports(s: ProxySettings, *, supported: bool) -> bool:
    """Upstream's rule: only in a mode that `supported`s them (iptables), and only when
    --nodeport-addresses (if given) covers 127.0.0.1."""
    if not supported or not s.localhost_nodeports:
        return False
    loopback = ipaddress.IPv4Address("127.0.0.1")
    nets = [ipaddress.ip_network(c, strict=False) for c in s.nodeport_addresses]
    return not nets or any(loopback in n for n in nets if n.version == 4)


def proxy_config(
    s: ProxySettings, node_name: str, addresses: tuple[str, ...], *, localhost: bool
) -> model.ProxyConfig:
    """The rule model's view of the settings and of the node's addresses now."""
    if s.bind_address not in ("", "0.0.0.0", "::") and s.bind_address not in addresses:
        addresses = (s.bind_address, *addresses)  # upstream: the node's primary IP
    return model.ProxyConfig(
        node_name=node_name,
        node_ips=addresses,
        cluster_cidr=s.cluster_cidr or None,
        masquerade_all=s.masquerade_all,
        masquerade_bit=s.masquerade_bit,
        nodeport_addresses=s.nodeport_addresses,
        localhost_nodeports=localhost,
    )


class ProxyDaemon:
    """Everything `pykubelet proxy` runs, wired together around one backend."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        client: ApiClient,
        backend: ProxyBackend,
        node_name: str,
        addresses: Callable[[], tuple[str, ...]] = local_ipv4,
        conntrack_tool: conntrack.Conntrack | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.backend = backend
        self.node_name = node_name
        self._addresses = addresses
        self._clock = clock
        traits = backend.traits
        self._localhost = localhost_nodeports(settings, supported=traits.localhost_nodeports)
        self.metrics = ProxyMetrics()
        self.history = History(settings.history_size)
        self.health = http.Health(timeout=2 * settings.sync_period)
        self.proxier = Proxier(
            self.node_config(()),
            backend,
            metrics=self.metrics,
            history=self.history,
            conntrack_tool=conntrack_tool or conntrack.Conntrack(),
            clock=clock,
        )
        self.nodes = NodeCache(node_name, self.health)
        self.loop = SyncLoop(
            self.proxier,
            health=self.health,
            metrics=self.metrics,
            min_sync_period=settings.min_sync_period,
            full_period=traits.full_sync_period or settings.sync_period,
            partial_every=settings.sync_period if traits.partial_syncs else None,
            node_config=self.node_config,
            clock=clock,
        )
        self.views = DebugViews(self.proxier, self.history, node_name)
        self._listed = {name: asyncio.Event() for name in ("services", "endpointslices")}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runners: list[web.AppRunner] = []

    def node_config(self, known: tuple[str, ...]) -> model.ProxyConfig:
        """The config from the netns's addresses now; with `known` (the last ones read) when
        they cannot be read, so a failing `ip` neither ends the sync loop nor empties the
        NodePort addresses. Blocking."""
        try:
            addresses = self._addresses()
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("reading the node's addresses failed, keeping %s: %s", known, exc)
            addresses = known
        return proxy_config(self.settings, self.node_name, addresses, localhost=self._localhost)

    # ---- events --------------------------------------------------------------------------------
    def on_service(self, event: InformerEvent) -> None:
        self.proxier.on_service(event)
        if event.type == SYNC:
            self._listed["services"].set()
        if self.proxier.dirty:
            self.loop.wake()

    def on_slice(self, event: InformerEvent) -> None:
        self.proxier.on_slice(event)
        if event.type == SYNC:
            self._listed["endpointslices"].set()
        if self.proxier.dirty:
            self.loop.wake()

    def on_node(self, event: InformerEvent) -> None:
        self.nodes.on_node(event)

    # ---- running -------------------------------------------------------------------------------
    async def sync_loop(self) -> None:
        """Sync rules once every informer listed, then forever (see SyncLoop)."""
        await self.loop.run([*self._listed.values(), self.nodes.listed])

    async def routes_loop(self) -> None:
        await self.nodes.follow_routes(self.settings.node_routes, self.settings.min_sync_period)

    async def _serve(self) -> None:
        s = self.settings
        if s.healthz_bind_address:
            host, port = split_host_port(s.healthz_bind_address, "healthzBindAddress")
            if port:
                app = http.health_app(self.health, self._clock)
                self._runners.append(await http.serve(app, host, port))
        if s.metrics_bind_address:
            host, port = split_host_port(s.metrics_bind_address, "metricsBindAddress")
            if port:
                app = http.metrics_app(self.metrics.registry, self.views, self.health, self._clock)
                self._runners.append(await http.serve(app, host, port))

    def _watch(
        self, name: str, resource: Resource, handler: Callable[[InformerEvent], None]
    ) -> None:
        async def body() -> None:
            await watch_forever(self.client, resource, handler)

        spawn(self._tasks, f"watch-{name}", body)

    async def _announce_ready(self) -> None:
        """READY=1 to systemd (Type=notify units) once the rules were synced once."""
        await self.loop.synced.wait()
        status = f"Proxying Services for node {self.node_name} ({self.backend.traits.mode} mode)"
        systemd.Notifier(name="pykubelet proxy").ready(status)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        traits = self.backend.traits
        log.info(
            "starting proxy node=%s mode=%s backend=%s", self.node_name, traits.mode, traits.name
        )
        self.health.queued(self._clock())
        if self.proxier.config.localhost_nodeports:
            log.info("setting route_localnet=1 for NodePorts on 127.0.0.1")
            await asyncio.to_thread(ensure_route_localnet)
        try:
            await self._serve()  # inside: a port in use must not leave the other one served
            self._watch("services", SERVICES, self.on_service)
            self._watch("endpointslices", ENDPOINTSLICES, self.on_slice)
            self._watch("nodes", NODES, self.on_node)
            spawn(self._tasks, "sync-rules", self.sync_loop)
            if self.settings.node_routes != "none":
                spawn(self._tasks, "node-routes", self.routes_loop)
            self._tasks.add(notify := asyncio.create_task(self._announce_ready()))
            notify.add_done_callback(self._tasks.discard)
            await stop.wait()
        finally:
            systemd.Notifier(name="pykubelet proxy").stopping()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for runner in self._runners:
                await runner.cleanup()
            await self.client.close()
            self.backend.close()
            log.info("proxy stopped; rules stay in place")


async def _main(settings: ProxySettings, backend: ProxyBackend) -> int:
    node_name = (settings.hostname_override or facts.hostname()).lower()
    if not settings.kubeconfig:
        print("pykubelet proxy: --kubeconfig is required", file=sys.stderr)
        backend.close()
        return EXIT_CONFIG
    try:
        client = ApiClient.from_kubeconfig(settings.kubeconfig)
    except (KubeconfigError, OSError) as exc:
        print(f"pykubelet proxy: kubeconfig {settings.kubeconfig}: {exc}", file=sys.stderr)
        backend.close()
        return EXIT_CONFIG
    daemon = ProxyDaemon(settings, client=client, backend=backend, node_name=node_name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.run(stop)
    except OSError as exc:  # a port already in use, typically
        print(f"pykubelet proxy: {exc}", file=sys.stderr)
        return 1
    return 0


def main(settings: ProxySettings) -> int:
    """Run until SIGTERM/SIGINT (or clean up, with --cleanup); returns the exit status."""
    if settings.cleanup:
        from net.proxy import cleanup

        return cleanup.main()
    try:
        backend = modes.open_backend(settings.mode)
    except Unsupported as exc:
        print(f"pykubelet proxy: {exc}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    return asyncio.run(_main(settings, backend))
