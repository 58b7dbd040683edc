"""`pykubelet proxy`'s composition root: informers for Services, EndpointSlices and Nodes feed the
Proxier; a coalescing sync loop applies rules; HTTP servers, node routes. Rules stay on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from kube import facts
from kube.apiserver import (
    NODES,
    SYNC,
    ApiClient,
    InformerEvent,
    KubeconfigError,
    watch_forever,
)
from kube.apiserver.requests import ENDPOINTSLICES, SERVICES
from kube.supervise import spawn
from net.proxy import conntrack, http, model, proxier
from net.proxy.history import History
from net.proxy.iptables import executor as iptables_exec
from net.proxy.metrics import ProxyMetrics
from net.proxy.settings import EXIT_CONFIG, EXIT_UNSUPPORTED, ProxySettings, split_host_port

__all__ = ["EXIT_UNSUPPORTED", "ProxyDaemon", "Unsupported", "check_mode", "main"]

log = logging.getLogger(__name__)

FAILURE_BACKOFF_CAP = 30.0
FULL_SYNC_SHARE = 10
"""A periodic full sync waits at least this many times as long as the last one took."""


class Unsupported(RuntimeError):
    """The host lacks what the chosen mode needs; the message is one line for the user."""


def check_mode(mode: str, *, proc: Path = Path("/proc")) -> None:
    """Refuse modes this host (or this build) cannot run, with a one-line reason."""
    if mode == "ipvs":
        from net.proxy.ipvs.plan import ipvs_available

        try:
            modules = (proc / "modules").read_text()
        except OSError:
            modules = ""
        ok, why = ipvs_available(modules, (proc / "net" / "ip_vs").exists())
        if not ok:
            raise Unsupported(why)


def local_ipv4(
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> tuple[str, ...]:
    """This netns's IPv4 addresses (loopback excluded), sorted; OSError when `ip` fails."""
    r = run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"ip addr show: {r.stderr.strip() or f'exit status {r.returncode}'}")
    try:
        links = json.loads(r.stdout)
    except ValueError as exc:
        raise OSError(f"ip addr show: unreadable output ({exc})") from exc
    out = set()
    for link in links if isinstance(links, list) else ():
        for addr in link.get("addr_info") or ():
            try:
                ip = ipaddress.IPv4Address(addr.get("local"))
            except ValueError:
                continue
            if not ip.is_loopback:
                out.add(ip)
    return tuple(str(ip) for ip in sorted(out))


def localhost_nodeports(s: ProxySettings) -> bool:
    """Upstream's rule: iptables mode only, and only when --nodeport-addresses (if given)
    covers 127.0.0.1."""
    if s.mode != "iptables" or not s.localhost_nodeports:
        return False
    loopback = ipaddress.IPv4Address("127.0.0.1")
    nets = [ipaddress.ip_network(c, strict=False) for c in s.nodeport_addresses]
    return not nets or any(loopback in n for n in nets if n.version == 4)


def ensure_route_localnet(proc_sys: Path = Path("/proc/sys")) -> bool:
    """net.ipv4.conf.all.route_localnet=1 in this netns (what NodePorts on 127.0.0.1 need);
    False, logged, when it cannot be set."""
    path = proc_sys / "net" / "ipv4" / "conf" / "all" / "route_localnet"
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as exc:
        log.warning("cannot set route_localnet=1, NodePorts on 127.0.0.1 won't work: %s", exc)
        return False
    return True


class ProxyDaemon:
    """Everything `pykubelet proxy` runs, wired together."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        client: ApiClient,
        executor: iptables_exec.Executor,
        node_name: str,
        addresses: Callable[[], tuple[str, ...]] = local_ipv4,
        conntrack_tool: conntrack.Conntrack | None = None,
        clock: Callable[[], float] = time.time,
        ipvs_kernel: Any = None,
        nft_kernel: Any = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.node_name = node_name
        self._addresses = addresses
        self._clock = clock
        nftables = settings.mode == "nftables"
        self.full_period = settings.sync_period
        """Seconds between periodic full syncs (before stretching them when they are slow)."""
        self.partial_every: float | None = None
        """nftables mode, as upstream's: a partial sync every sync period, a full one hourly."""
        if nftables:
            from net.proxy.nftables import backend as nft_exec

            self.metrics: ProxyMetrics = nft_exec.NftMetrics()
            self.full_period = nft_exec.FULL_SYNC_PERIOD
            self.partial_every = settings.sync_period
        else:
            self.metrics = ProxyMetrics()
        self.history = History(settings.history_size)
        self.health = http.Health(timeout=2 * settings.sync_period)
        common: dict[str, Any] = {
            "metrics": self.metrics,
            "history": self.history,
            "conntrack_tool": conntrack_tool or conntrack.Conntrack(),
            "clock": clock,
        }
        if settings.mode == "ipvs":
            from net.proxy.ipvs import backend as ipvs_exec

            kernel = ipvs_kernel if ipvs_kernel is not None else ipvs_exec.Pyroute2Ipvs()
            programmer = ipvs_exec.IpvsProgrammer(kernel, executor)
            self.proxier: proxier.Proxier = ipvs_exec.IpvsProxier(
                self.config(self._node_addresses(())), executor, programmer=programmer, **common
            )
        elif nftables:
            if nft_kernel is None:
                from net.nft.netlink import NftNetlink

                nft_kernel = NftNetlink()
            self.proxier = nft_exec.NftProxier(
                self.config(self._node_addresses(())), executor, nft=nft_kernel, **common
            )
        else:
            self.proxier = proxier.Proxier(
                self.config(self._node_addresses(())), executor, **common
            )
        self.nodes: dict[str, Mapping[str, Any]] = {}
        self._wake = asyncio.Event()
        self._nodes_changed = asyncio.Event()
        self._synced: dict[str, asyncio.Event] = {
            name: asyncio.Event() for name in ("services", "endpointslices", "nodes")
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._runners: list[web.AppRunner] = []
        self.failures = 0
        self.full_every = self.full_period
        """Seconds between periodic full syncs (stretched when they are slow)."""

    def _node_addresses(self, known: tuple[str, ...]) -> tuple[str, ...]:
        """The netns's addresses now; `known` (the last ones read) when they cannot be read,
        so a failing `ip` neither ends the sync loop nor empties the NodePort addresses."""
        try:
            return self._addresses()
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("reading the node's addresses failed, keeping %s: %s", known, exc)
            return known

    def config(self, addresses: tuple[str, ...]) -> model.ProxyConfig:
        s = self.settings
        if s.bind_address not in ("", "0.0.0.0", "::") and s.bind_address not in addresses:
            addresses = (s.bind_address, *addresses)  # upstream: the node's primary IP
        return model.ProxyConfig(
            node_name=self.node_name,
            node_ips=addresses,
            cluster_cidr=s.cluster_cidr or None,
            masquerade_all=s.masquerade_all,
            masquerade_bit=s.masquerade_bit,
            nodeport_addresses=s.nodeport_addresses,
            localhost_nodeports=localhost_nodeports(s),
        )

    # ---- events --------------------------------------------------------------------------------
    def _queued(self) -> None:
        now = self._clock()
        self.metrics.last_queued_timestamp.set(now)
        self.health.queued(now)
        self._wake.set()

    def on_service(self, event: InformerEvent) -> None:
        self.proxier.on_service(event)
        if event.type == SYNC:
            self._synced["services"].set()
        if self.proxier.dirty:
            self._queued()

    def on_slice(self, event: InformerEvent) -> None:
        self.proxier.on_slice(event)
        if event.type == SYNC:
            self._synced["endpointslices"].set()
        if self.proxier.dirty:
            self._queued()

    def on_node(self, event: InformerEvent) -> None:
        if event.type == SYNC:
            self.nodes = {_name(o): o for o in event.items}
            self._synced["nodes"].set()
        elif event.object is not None:
            if event.type == "DELETED":
                self.nodes.pop(_name(event.object), None)
            else:
                self.nodes[_name(event.object)] = event.object
        mine = self.nodes.get(self.node_name)
        self.health.node_eligible = not (mine and mine.get("metadata", {}).get("deletionTimestamp"))
        self._nodes_changed.set()

    # ---- sync loop -----------------------------------------------------------------------------
    async def sync_loop(self) -> None:
        """Coalesce changes; at most one sync per min sync period; a full one every sync period
        (and first, and after a failure). When full syncs are slow (nf_tables with thousands
        of Services), they are spaced to take at most 1/FULL_SYNC_SHARE of the time, so
        partial syncs of changes are not stuck behind them. nftables mode, as upstream's: a
        (partial) sync every sync period, a full one every FULL_SYNC_PERIOD."""
        for event in self._synced.values():
            await event.wait()
        s = self.settings
        last_start = last_full = -float("inf")
        self.full_every = self.full_period
        tick = self.partial_every
        while True:
            now = time.monotonic()
            due_full = now - last_full >= self.full_every
            due_tick = tick is not None and now - last_start >= tick
            if not (self.proxier.dirty or due_full or due_tick):
                next_at = last_full + self.full_every
                if tick is not None:
                    next_at = min(next_at, last_start + tick)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), next_at - now)
                continue
            gap = s.min_sync_period * (2 ** min(self.failures, 5)) if self.failures else 0.0
            wait = last_start + max(s.min_sync_period, min(gap, FAILURE_BACKOFF_CAP)) - now
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            last_start = time.monotonic()
            full = due_full or self.proxier.pending.full
            if full:
                known = self.proxier.config.node_ips
                addrs = await asyncio.to_thread(self._node_addresses, known)
                self.proxier.set_config(self.config(addrs), "node addresses changed")
            why = "startup" if last_full < 0 else "periodic" if due_full or due_tick else ""
            job = self.proxier.prepare(full=full, reason=why)
            outcome = await asyncio.to_thread(self.proxier.run, job)
            record = self.proxier.finish(job, outcome)
            if record.error:
                self.failures += 1
                continue
            self.failures = 0
            if job.full:
                last_full = last_start
                self.full_every = max(self.full_period, FULL_SYNC_SHARE * record.duration)
            self.health.updated(self._clock())
            if self.proxier.dirty:
                self.health.queued(self.proxier.pending.since or self._clock())

    async def routes_loop(self) -> None:
        from net.routes.syncer import RouteSyncer

        syncer = RouteSyncer(self.node_name, mode=self.settings.node_routes)
        try:
            await self._synced["nodes"].wait()
            while True:
                await self._nodes_changed.wait()
                self._nodes_changed.clear()
                try:
                    await asyncio.to_thread(syncer.sync, list(self.nodes.values()))
                except Exception:
                    # still owed: the supervised restart syncs at once, not at the next change
                    self._nodes_changed.set()
                    raise
                await asyncio.sleep(self.settings.min_sync_period)
        finally:
            await asyncio.to_thread(syncer.close)

    # ---- debug views ---------------------------------------------------------------------------
    def rules(self, *, with_text: bool) -> dict[str, Any]:
        applied = self.proxier.applied
        count = getattr(self.proxier, "rule_count", None)  # nftables mode counts its own
        if not isinstance(count, int):
            count = applied.rule_count if applied is not None else 0
        return {
            "node": self.node_name,
            "mode": self.settings.mode,
            "backend": self.proxier.executor.backend.name,
            "synced": self.proxier.synced_once,
            "ruleCount": count,
            "history": self.history.to_json(with_text=with_text),
        }

    def explain(self, namespace: str, name: str) -> dict[str, Any] | None:
        from net.proxy.iptables import explain as explain_mod
        from net.proxy.nftables.backend import NftProxier

        key = (namespace, name)
        applied = self.proxier.applied
        tables = self.proxier.tables() if isinstance(self.proxier, NftProxier) else None
        # The informers' state, not the last synced one: right after a sync put a Service's
        # rules in the kernel, the sync's bookkeeping may not have run yet on the event loop;
        # endpoints not in the applied rules yet show without a chain.
        state = self.proxier.snapshot()
        if key not in state.services or (applied is None and not tables):
            return None
        svc = state.services[key]
        entries: list[Any] = []
        tool = self.proxier.conntrack
        if tool is not None:
            for ip in (svc.cluster_ip, *svc.external_ips, *svc.lb_ips):
                entries.extend(conntrack.parse_conntrack(tool.list(ip)))
        if tables:
            from net.proxy.nftables.explain import explain_tables

            result = explain_tables(
                state,
                tables,
                key,
                node_name=self.node_name,
                node_ips=self.proxier.config.node_ips,
                conntrack=entries,
            )
        elif applied is not None:
            result = explain_mod.explain(state, applied, key, conntrack=entries)
        else:
            return None
        return _to_json(result)

    def trace(self, src: str, dst: str, port: int, proto: str) -> dict[str, Any]:
        from net.proxy.iptables import trace as trace_mod

        if self.settings.mode == "nftables":
            return self._nft_trace(src, dst, port, proto)
        applied = self.proxier.applied
        if applied is None:
            return {"error": "no rules applied yet"}
        result = trace_mod.trace(
            applied,
            src=src,
            dst=dst,
            port=port,
            proto=proto,
            local_addresses=self.proxier.config.node_ips,
        )
        return _to_json(result)

    def _nft_trace(self, src: str, dst: str, port: int, proto: str) -> dict[str, Any]:
        from net.proxy.nftables.backend import NftProxier
        from net.proxy.nftables.trace import trace_tables

        tables = self.proxier.tables() if isinstance(self.proxier, NftProxier) else []
        if not tables:
            return {"error": "no rules applied yet"}
        result = trace_tables(
            tables,
            src=src,
            dst=dst,
            port=port,
            proto=proto,
            local_addresses=self.proxier.config.node_ips,
        )
        return _to_json(result)

    # ---- running -------------------------------------------------------------------------------
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
                app = http.metrics_app(self.metrics.registry, self, self.health, self._clock)
                self._runners.append(await http.serve(app, host, port))

    def _watch(self, name: str, resource: Any, handler: Callable[[InformerEvent], None]) -> None:
        async def body() -> None:
            await watch_forever(self.client, resource, handler)

        spawn(self._tasks, f"watch-{name}", body)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        log.info(
            "starting proxy node=%s mode=%s backend=%s",
            self.node_name,
            self.settings.mode,
            self.proxier.executor.backend.name,
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
            await stop.wait()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for runner in self._runners:
                await runner.cleanup()
            await self.client.close()
            close = getattr(self.proxier, "close", None)
            if callable(close):
                close()
            log.info("proxy stopped; rules stay in place")


def _cleanup_nftables() -> int | None:
    """Delete our nftables tables (`--cleanup`, whatever the mode): how many; None (after a
    one-line error) when that failed."""
    from net.nft.netlink import NftError, NftNetlink
    from net.proxy.cleanup import cleanup_nftables

    try:
        kernel = NftNetlink()
    except OSError as exc:
        print(f"pykubelet proxy --cleanup: nftables: {exc}", file=sys.stderr)
        return None
    try:
        return cleanup_nftables(kernel)
    except (NftError, OSError) as exc:
        print(f"pykubelet proxy --cleanup: nftables: {exc}", file=sys.stderr)
        return None
    finally:
        kernel.close()


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _to_json(value: Any) -> dict[str, Any]:
    """A result of the rule model as JSON: its fields, `outcomes` when it has them, and its
    own readable `text` (what `pykubelet net` prints as the table view)."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        data = dict(to_json())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    else:
        data = {"result": value}
    outcomes = getattr(value, "outcomes", None)
    if isinstance(outcomes, Mapping):
        data["outcomes"] = dict(outcomes)
    text = getattr(value, "text", None)
    if callable(text):
        data["text"] = text()
    return data


async def _main(settings: ProxySettings) -> int:
    node_name = (settings.hostname_override or facts.hostname()).lower()
    if not settings.kubeconfig:
        print("pykubelet proxy: --kubeconfig is required", file=sys.stderr)
        return EXIT_CONFIG
    try:
        client = ApiClient.from_kubeconfig(settings.kubeconfig)
    except (KubeconfigError, OSError) as exc:
        print(f"pykubelet proxy: kubeconfig {settings.kubeconfig}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if settings.mode == "nftables":  # no iptables program runs in this mode
            from net.proxy.nftables.backend import NETLINK

            backend = NETLINK
        else:
            backend = await asyncio.to_thread(iptables_exec.detect)
    except (RuntimeError, OSError) as exc:
        await client.close()
        print(f"pykubelet proxy: {exc}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    daemon = ProxyDaemon(
        settings,
        client=client,
        executor=iptables_exec.Executor(backend),
        node_name=node_name,
    )
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
    """Run until SIGTERM/SIGINT; returns the exit status."""
    if settings.cleanup:
        from net.proxy.cleanup import cleanup

        # nftables first: a host without iptables may still hold nftables mode's tables
        tables = _cleanup_nftables()
        try:
            executor = iptables_exec.Executor(iptables_exec.detect())
        except (RuntimeError, OSError) as exc:
            print(f"pykubelet proxy: {exc}", file=sys.stderr)
            if tables is not None:
                print(f"removed {tables} nftables tables; no iptables here")
            return EXIT_UNSUPPORTED
        try:
            removed = cleanup(executor)
        except iptables_exec.RestoreError as exc:
            print(f"pykubelet proxy --cleanup: {exc}", file=sys.stderr)
            return 1
        if tables is None:
            return 1
        more = f", {tables} nftables tables" if tables else ""
        print(f"removed {removed} chains ({executor.backend.name}){more}")
        return 0
    try:
        check_mode(settings.mode)
    except Unsupported as exc:
        print(f"pykubelet proxy: {exc}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    return asyncio.run(_main(settings))
