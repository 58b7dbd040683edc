"""The daemon's sync loop and HTTP views with a recording kernel: waits for all informers, first
sync full, bursts coalesced within the min sync period, /healthz as upstream, /debug views."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar, cast

import pytest

from kube.apiserver import ApiClient
from net.proxy import http, views_command
from net.proxy.conntrack import Conntrack
from net.proxy.daemon import ProxyDaemon
from net.proxy.host import local_ipv4
from net.proxy.iptables.backend import IptablesBackend
from net.proxy.iptables.executor import NFT, Executor
from net.proxy.settings import ProxySettings

from .objects import Kernel, endpoint_slice, modified, node, service, sync

SETTINGS = ProxySettings(
    cluster_cidr="10.88.0.0/16", min_sync_period=0.2, sync_period=30.0, metrics_bind_address=""
)


def _daemon(kernel: Kernel, settings: ProxySettings = SETTINGS) -> ProxyDaemon:
    return ProxyDaemon(
        settings,
        client=cast(ApiClient, object()),
        backend=IptablesBackend(Executor(NFT, run=kernel)),
        node_name="n1",
        addresses=lambda: ("192.168.1.10",),
        conntrack_tool=Conntrack(run=kernel),
    )


def _prime(d: ProxyDaemon) -> None:
    d.on_service(sync(service("web", "10.0.0.10", node_port=30080)))
    d.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.3"])))
    d.on_node(sync(node("n1", "192.168.1.10")))


@contextlib.asynccontextmanager
async def _running(d: ProxyDaemon) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(d.sync_loop())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(cond: Any, limit: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_no_sync_before_every_informer_listed() -> None:
    kernel = Kernel()
    d = _daemon(kernel)
    d.on_service(sync(service("web", "10.0.0.10")))
    d.on_slice(sync())
    async with _running(d):
        await asyncio.sleep(0.1)
        assert kernel.restores == []
        d.on_node(sync())
        await _until(lambda: len(kernel.restores) == 1)
    last = d.history.last()
    assert last is not None and last.full


async def test_bursts_are_coalesced_and_partial() -> None:
    kernel = Kernel()
    d = _daemon(kernel)
    _prime(d)
    async with _running(d):
        await _until(lambda: len(d.history) == 1)
        for ips in (["10.88.1.2"], ["10.88.1.2", "10.88.1.4"], ["10.88.1.4"]):
            d.on_slice(modified(endpoint_slice("web-1", "web", ips)))  # one burst, no yield
        await _until(lambda: len(d.history) == 2)
        await asyncio.sleep(0.3)
    records = d.history.to_json()
    assert len(records) == 2
    newest, first = records
    assert first["full"] and not newest["full"]
    # min sync period 0.2 s between the loop's starts; a record's time is taken a little later
    # (when the proxier begins), by a delay that a loaded machine stretches, so allow for it
    assert newest["time"] - first["time"] >= 0.15
    assert newest["changed"] == ["default/web"]
    assert "10.88.1.4:8080" in kernel.restores[-1] and "10.88.1.3" not in kernel.restores[-1]


async def test_healthz_is_503_until_synced_then_200() -> None:
    kernel = Kernel()
    d = _daemon(kernel)
    now = [1000.0]
    app = http.health_app(d.health, lambda: now[0])
    runner = await http.serve(app, "127.0.0.1", 0)
    try:
        port = runner.addresses[0][1]
        d.health.queued(1000.0)
        code, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
        assert code == 503 and body["lastUpdated"].startswith("0001-01-01")
        d.health.updated(1000.0)
        now[0] = 1010.0
        code, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
        assert code == 200 and body["nodeEligible"] is True
        assert set(body) == {"lastUpdated", "currentTime", "nodeEligible"}
        d.health.queued(1010.0)
        now[0] = 1071.0  # a change waiting longer than 2 x syncPeriod
        code, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
        assert code == 503
    finally:
        await runner.cleanup()


def test_deleting_this_node_makes_it_ineligible() -> None:
    d = _daemon(Kernel())
    d.on_node(sync(node("n1", "192.168.1.10")))
    assert d.health.node_eligible
    d.on_node(modified(node("n1", "192.168.1.10", deleting=True)))
    assert not d.health.node_eligible


def _get(url: str) -> tuple[int, dict[str, Any]]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def test_metrics_and_debug_views_over_http(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel()
    d = _daemon(kernel)
    _prime(d)
    async with _running(d):
        await _until(lambda: len(d.history) == 1)
    app = http.metrics_app(d.metrics.registry, d.views, d.health, lambda: 1000.0)
    runner = await http.serve(app, "127.0.0.1", 0)
    try:
        address = f"127.0.0.1:{runner.addresses[0][1]}"
        import urllib.request

        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://{address}/metrics").read().decode()
        )
        assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1.0" in text
        assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in text
        rules = await asyncio.to_thread(views_command.fetch, address, "/debug/rules")
        assert rules["node"] == "n1" and rules["history"][0]["full"] is True
        table = views_command.format_rules(rules)
        assert "full" in table and "default/web" in table
        code = await asyncio.to_thread(
            views_command.main_for_tests, ["rules", f"--metrics-address={address}", "-o", "json"]
        )
        assert code == 0 and '"backend": "nft"' in capsys.readouterr().out
        code = await asyncio.to_thread(
            views_command.main_for_tests,
            ["explain", "svc", "default/nope", f"--metrics-address={address}"],
        )
        assert code == 1
        assert 'service "nope" in namespace "default" not found' in capsys.readouterr().err
        trace = await asyncio.to_thread(
            views_command.fetch,
            address,
            "/debug/trace",
            {"src": "10.88.5.5", "dst": "10.0.0.10", "port": "80"},
        )
        assert set(trace["outcomes"]) == {"dnat 10.88.1.2:8080", "dnat 10.88.1.3:8080"}
        code = await asyncio.to_thread(
            views_command.main_for_tests,
            ["trace", "--src=1.2.3.4", "--dst=10.0.0.10", f"--metrics-address={address}"],
        )
        assert code == 1 and "expected IP:PORT" in capsys.readouterr().err
    finally:
        await runner.cleanup()


def test_unreachable_proxy_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = views_command.main_for_tests(["rules", "--metrics-address=127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the proxy's metrics address 127.0.0.1:1" in err


def test_node_facts() -> None:
    addrs = local_ipv4()
    assert "127.0.0.1" not in addrs


class FakeRoutes:
    made: ClassVar[list[FakeRoutes]] = []

    def __init__(self, node_name: str, *, mode: str) -> None:
        self.node_name, self.mode = node_name, mode
        self.synced: list[list[str]] = []
        self.closed = False
        FakeRoutes.made.append(self)

    def sync(self, nodes: list[dict[str, Any]]) -> None:
        self.synced.append(sorted(n["metadata"]["name"] for n in nodes))

    def close(self) -> None:
        self.closed = True


async def test_node_routes_follow_the_node_list(monkeypatch: pytest.MonkeyPatch) -> None:
    import net.routes.syncer

    monkeypatch.setattr(net.routes.syncer, "RouteSyncer", FakeRoutes)
    FakeRoutes.made.clear()
    settings = ProxySettings(node_routes="host-gw", min_sync_period=0.05, metrics_bind_address="")
    d = _daemon(Kernel(), settings)
    task = asyncio.create_task(d.routes_loop())
    try:
        d.on_node(sync(node("n1", "192.168.1.10"), node("n2", "192.168.1.11")))
        await _until(lambda: bool(FakeRoutes.made) and bool(FakeRoutes.made[0].synced))
        d.on_node(modified(node("n3", "192.168.1.12")))
        await _until(lambda: len(FakeRoutes.made[0].synced) == 2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    routes = FakeRoutes.made[0]
    assert (routes.node_name, routes.mode) == ("n1", "host-gw")
    assert routes.synced == [["n1", "n2"], ["n1", "n2", "n3"]]
    assert routes.closed


def test_bind_address_is_the_node_ip_as_upstream() -> None:
    settings = ProxySettings(bind_address="192.168.9.9", metrics_bind_address="")
    assert _daemon(Kernel(), settings).proxier.config.node_ips == ("192.168.9.9", "192.168.1.10")
    assert _daemon(Kernel()).proxier.config.node_ips == ("192.168.1.10",)


async def test_periodic_full_syncs_are_spaced_when_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = Kernel()
    settings = ProxySettings(min_sync_period=0.01, sync_period=0.2, metrics_bind_address="")
    d = _daemon(kernel, settings)
    _prime(d)
    run = d.proxier.run

    def slow(job: Any) -> Any:
        out = run(job)
        out.duration = 0.05  # as if restores took 50 ms: full syncs at most every 0.5 s
        return out

    monkeypatch.setattr(d.proxier, "run", slow)
    async with _running(d):
        await _until(lambda: len(d.history) == 1)
        assert d.loop.full_every == pytest.approx(0.5)
        await asyncio.sleep(0.35)
        assert len(d.history) == 1  # the 0.2 s sync period alone would have synced again
        await _until(lambda: len(d.history) == 2, limit=2.0)
    assert all(r["full"] for r in d.history.to_json())
    assert d.history.to_json()[0]["reasons"] == ["periodic"]


async def test_node_routes_failing_sync_is_retried_without_a_node_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import net.routes.syncer

    class Flaky(FakeRoutes):
        def sync(self, nodes: list[dict[str, Any]]) -> None:
            if len(FakeRoutes.made) == 1:
                raise OSError("netlink socket broke")
            super().sync(nodes)

    monkeypatch.setattr(net.routes.syncer, "RouteSyncer", Flaky)
    FakeRoutes.made.clear()
    settings = ProxySettings(node_routes="host-gw", min_sync_period=0.05, metrics_bind_address="")
    d = _daemon(Kernel(), settings)
    d.on_node(sync(node("n1", "192.168.1.10"), node("n2", "192.168.1.11")))
    with pytest.raises(OSError):
        await asyncio.wait_for(d.routes_loop(), 3)
    task = asyncio.create_task(d.routes_loop())  # what the supervisor does after a failure
    try:
        await _until(lambda: len(FakeRoutes.made) == 2 and bool(FakeRoutes.made[1].synced))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert FakeRoutes.made[1].synced == [["n1", "n2"]]


def test_local_ipv4_failure_is_an_error_not_an_empty_address_list() -> None:
    import subprocess

    def failing(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "Cannot open netlink socket")

    def odd(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        out = '[{"addr_info": [{"local": "10.1.2.3"}, {"local": "fe80::1"}, {}]}, {}]'
        return subprocess.CompletedProcess(cmd, 0, out, "")

    with pytest.raises(OSError, match="Cannot open netlink socket"):
        local_ipv4(failing)
    assert local_ipv4(odd) == ("10.1.2.3",)


def test_local_ipv4_leaves_out_ipvs_service_addresses() -> None:
    # in a VM the IPVS NodePort got virtual servers on 10.0.0.1:30258 and 10.0.0.110:30258
    import subprocess

    from net.proxy.ipvs.plan import DUMMY_INTERFACE

    def ip(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        out = json.dumps(
            [
                {"ifname": "eth0", "addr_info": [{"local": "198.18.1.11"}]},
                {"ifname": DUMMY_INTERFACE, "addr_info": [{"local": "10.0.0.1"}]},
            ]
        )
        return subprocess.CompletedProcess(cmd, 0, out, "")

    assert local_ipv4(ip) == ("198.18.1.11",)


async def test_unreadable_addresses_keep_the_last_known_ones() -> None:
    kernel = Kernel()
    calls = [0]

    def addresses() -> tuple[str, ...]:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError("ip: command not found")
        return ("192.168.1.10",)

    settings = ProxySettings(min_sync_period=0.01, sync_period=0.05, metrics_bind_address="")
    d = ProxyDaemon(
        settings,
        client=cast(ApiClient, object()),
        backend=IptablesBackend(Executor(NFT, run=kernel)),
        node_name="n1",
        addresses=addresses,
        conntrack_tool=Conntrack(run=kernel),
    )
    _prime(d)
    async with _running(d) as task:
        await _until(lambda: len(kernel.restores) >= 3)
        assert not task.done()
    assert d.proxier.config.node_ips == ("192.168.1.10",)
    assert calls[0] >= 3


def test_localhost_nodeports_follow_mode_and_nodeport_addresses(tmp_path: Any) -> None:
    from net.proxy.daemon import localhost_nodeports
    from net.proxy.host import ensure_route_localnet

    def on(s: ProxySettings, supported: bool = True) -> bool:
        return localhost_nodeports(s, supported=supported)

    assert on(ProxySettings())
    assert not on(ProxySettings(localhost_nodeports=False))
    assert not on(ProxySettings(mode="ipvs"), supported=False)  # iptables mode only
    assert not on(ProxySettings(nodeport_addresses=("192.168.0.0/16",)))
    assert on(ProxySettings(nodeport_addresses=("127.0.0.0/8", "fd00::/8")))
    assert _daemon(Kernel()).proxier.config.localhost_nodeports
    sysctl = tmp_path / "net" / "ipv4" / "conf" / "all" / "route_localnet"
    sysctl.parent.mkdir(parents=True)
    sysctl.write_text("0\n")
    assert ensure_route_localnet(tmp_path) and sysctl.read_text() == "1\n"
    assert not ensure_route_localnet(tmp_path / "missing")


async def test_a_slow_explain_does_not_stall_the_event_loop() -> None:
    """explain runs `conntrack -L`: the handler must not block the loop the sync loop runs on."""
    import time
    import urllib.request

    class SlowDebug:
        def rules(self, *, with_text: bool) -> dict[str, Any]:
            return {}

        def explain(self, namespace: str, name: str) -> dict[str, Any] | None:
            time.sleep(0.6)
            return {"service": f"{namespace}/{name}"}

        def trace(self, src: str, dst: str, port: int, proto: str) -> dict[str, Any]:
            time.sleep(0.6)
            return {}

    d = _daemon(Kernel())
    runner = await http.serve(
        http.metrics_app(d.metrics.registry, SlowDebug(), d.health, lambda: 1.0), "127.0.0.1", 0
    )
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/debug/explain?svc=default/web"
        request = asyncio.create_task(asyncio.to_thread(lambda: urllib.request.urlopen(url).read()))
        ticks = 0
        while not request.done():
            await asyncio.sleep(0.05)
            ticks += 1
        assert b"default/web" in await request
        assert ticks >= 6  # the loop kept running while explain worked
    finally:
        await runner.cleanup()


async def test_trace_of_an_ipv6_packet_is_a_400_not_a_500() -> None:
    import urllib.error
    import urllib.request

    d = _daemon(Kernel())
    _prime(d)
    async with _running(d):
        await _until(lambda: len(d.history) == 1)
    runner = await http.serve(
        http.metrics_app(d.metrics.registry, d.views, d.health, lambda: 1.0), "127.0.0.1", 0
    )
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/debug/trace?src=fd00::1&dst=10.0.0.10&port=80"
        with pytest.raises(urllib.error.HTTPError) as info:
            await asyncio.to_thread(urllib.request.urlopen, url)
        assert info.value.code == 400 and b"IPv4" in info.value.read()
    finally:
        await runner.cleanup()


async def test_a_port_in_use_leaves_no_server_of_ours_running() -> None:
    import socket

    class Client:
        closed = False

        async def close(self) -> None:
            Client.closed = True

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    health_port = free.getsockname()[1]
    free.close()
    settings = ProxySettings(
        healthz_bind_address=f"127.0.0.1:{health_port}",
        metrics_bind_address=f"127.0.0.1:{taken.getsockname()[1]}",
        localhost_nodeports=False,
    )
    d = ProxyDaemon(
        settings,
        client=cast(ApiClient, Client()),
        backend=IptablesBackend(Executor(NFT, run=Kernel())),
        node_name="n1",
        addresses=lambda: ("192.168.1.10",),
    )
    try:
        with pytest.raises(OSError):
            await d.run()
    finally:
        taken.close()
    again = socket.socket()
    try:
        again.bind(("127.0.0.1", health_port))  # the health server that did start is gone
    finally:
        again.close()
    assert Client.closed


def test_rules_view_names_ops_in_nftables_mode() -> None:
    record = {
        "time": 0.0,
        "duration": 0.005,
        "full": False,
        "lines": 14,
        "services": 3,
        "changed": ["default/web"],
        "removed": [],
        "conntrack_flushed": 0,
        "reasons": ["EndpointSlice default/web-x"],
        "error": "",
    }
    nft = views_command.format_rules({"sizeUnit": "ops", "history": [record]})
    ipt = views_command.format_rules({"sizeUnit": "lines", "history": [record]})
    assert " OPS " in nft and " LINES " not in nft
    assert " LINES " in ipt and " OPS " not in ipt


def test_failed_syncs_back_off_even_with_a_zero_min_sync_period() -> None:
    # IPVS mode's minSyncPeriod defaults to 0: a sync failing every time was retried back to
    # back (every ~100 ms in a VM); now 2 s, 4 s, ... up to the cap, as with a 1 s period
    from net.proxy.syncloop import FAILURE_BACKOFF_CAP

    settings = ProxySettings(min_sync_period=0.0, metrics_bind_address="")
    loop = _daemon(Kernel(), settings).loop
    assert loop._gap() == 0.0
    gaps = []
    for failures in range(1, 8):
        loop.failures = failures
        gaps.append(loop._gap())
    assert gaps == [2.0, 4.0, 8.0, 16.0, FAILURE_BACKOFF_CAP, FAILURE_BACKOFF_CAP, 30.0]
    loop.min_sync_period = 1.0
    loop.failures = 1
    assert loop._gap() == 2.0
