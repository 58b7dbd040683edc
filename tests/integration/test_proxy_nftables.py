"""`pykubelet proxy --proxy-mode nftables` end to end: the real control plane and kernel, the proxy
in a netns node, processes as backends in another netns host (tests/integration/proxyenv.py).
Traffic, partial syncs, conntrack, a SIGKILLed proxy's restart and --cleanup are checked; and the
proxier alone on a scratch netns: a refused batch changes nothing, a restart drops stale chains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from cluster import proxyproc
from cluster.spec import ClusterSpec
from net import netns
from net.nft import ir
from net.nft.netlink import NftNetlink, TableObjects
from net.proxy import model
from net.proxy.history import History
from net.proxy.metrics import ProxyMetrics
from net.proxy.nftables.backend import NftBackend
from net.proxy.proxier import Proxier
from tests.unit.net.proxy.objects import endpoint_slice, modified, service, sync

from .podutil import wait_for
from .proxyenv import BACKEND_PORT, proxy_env, start_proxy
from .test_proxy import Env, client_command, cluster_ip, requests, shares

NODE = "proxy-node-nft"
SUBNET = "10.125.0"
BACKENDS = [f"{SUBNET}.{i}" for i in (11, 12, 13)]
EXTERNAL_IP = f"{SUBNET}.200"
SHARED_TABLE = "pykube-proxy"


class NftEnv(Env):
    def ruleset(self) -> str:
        return self.node.run("nft", "list", "ruleset")

    def wait_rules(self, needle: str, present: bool = True, timeout: float = 10) -> float:
        """Seconds until the node's nftables ruleset does (not) hold `needle`."""
        t0 = time.monotonic()

        def check() -> bool:
            return (needle in self.ruleset()) == present

        try:
            wait_for(check, timeout, f"nft rule {'with' if present else 'without'} {needle}", 0.05)
        except AssertionError as exc:
            log = proxyproc.proxy_daemon(self.spec, NODE).log_file.read_text()
            raise AssertionError(f"{exc}\nproxy log:\n{log[-3000:]}") from None
        return time.monotonic() - t0

    def endpoint(self, svc: str, ip: str, *, port: str = "http", proto: str = "tcp") -> str:
        """What names the endpoint's chain (upstream's naming: namespace/name/proto/port)."""
        return f"{self.ns}/{svc}/{proto}/{port}__{ip}/{BACKEND_PORT}"

    def our_tables(self) -> list[str]:
        out = self.node.run("nft", "list", "tables")
        names = [line.split()[-1] for line in out.splitlines() if line.startswith("table ip ")]
        return [t for t in names if t == SHARED_TABLE or t.startswith(f"{SHARED_TABLE}-")]


@pytest.fixture(scope="module")
def env(cluster_spec: ClusterSpec) -> Iterator[NftEnv]:
    with proxy_env(
        cluster_spec,
        NftEnv,
        node_name=NODE,
        subnet=SUBNET,
        backends=BACKENDS,
        routed=(EXTERNAL_IP,),
        tag=f"pkn{os.getpid() % 100000}",
        mode="nftables",
    ) as e:
        yield e


def test_tables_are_sharded_and_iptables_is_untouched(env: NftEnv) -> None:
    assert len(env.our_tables()) == 17, env.our_tables()  # the shared table and 16 shards
    assert "KUBE-" not in env.node.run("iptables-save")
    rules = env.debug("/debug/rules")
    assert rules["mode"] == "nftables" and rules["backend"] == "netlink"
    assert rules["history"][-1]["full"] and not rules["history"][-1]["error"]


def test_clusterip_spreads_over_three_endpoints(env: NftEnv) -> None:
    svc = env.create_service("spread")
    env.put_slice("spread", BACKENDS)
    env.wait_rules(env.endpoint("spread", BACKENDS[2]))
    results = requests(env.node, cluster_ip(svc), 80, 300)
    share = shares(results)
    assert [r.status for r in results].count("ok") == 300, Counter(r.status for r in results)
    assert set(share) == set(BACKENDS)
    assert all(0.20 <= s <= 0.46 for s in share.values()), share
    outcomes = env.trace(env.node.address, cluster_ip(svc), 80)["outcomes"]
    assert {k.removeprefix("dnat ") for k in outcomes} == {f"{b}:{BACKEND_PORT}" for b in BACKENDS}
    assert all(abs(p - 1 / 3) < 1e-6 for p in outcomes.values())


def test_nodeport_answers_from_another_host(env: NftEnv) -> None:
    svc = env.create_service("np", type="NodePort")
    env.put_slice("np", BACKENDS[:2])
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_rules(env.endpoint("np", BACKENDS[1]))
    results = requests(env.client, env.node.address, node_port, 20)
    assert all(r.status == "ok" for r in results), results
    seen = {r.backend for r in results}
    assert seen <= set(BACKENDS[:2]) and seen
    # Masqueraded (externalTrafficPolicy Cluster): backends see the node, not the client.
    assert {r.client_seen_as for r in results} == {env.node.address}


def test_nodeport_local_policy_keeps_the_client_address(env: NftEnv) -> None:
    svc = env.create_service("nplocal", type="NodePort", externalTrafficPolicy="Local")
    body = env.slice_body("nplocal", BACKENDS[:1])
    body["endpoints"][0]["nodeName"] = NODE
    env.put_slice_body(body)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_rules(env.endpoint("nplocal", BACKENDS[0]))
    results = requests(env.client, env.node.address, node_port, 5)
    assert {r.backend for r in results} == {BACKENDS[0]}, results
    assert {r.client_seen_as for r in results} == {env.client.address}


def test_external_ip(env: NftEnv) -> None:
    env.create_service("ext", externalIPs=[EXTERNAL_IP])
    env.put_slice("ext", BACKENDS[2:])
    env.wait_rules(env.endpoint("ext", BACKENDS[2]))
    env.assert_only_backend(env.client, EXTERNAL_IP, 80, BACKENDS[2])


def test_client_ip_affinity_sticks(env: NftEnv) -> None:
    svc = env.create_service(
        "sticky",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    env.put_slice("sticky", BACKENDS)
    env.wait_rules(env.endpoint("sticky", BACKENDS[2]))
    results = requests(env.node, cluster_ip(svc), 80, 40)
    assert all(r.status == "ok" for r in results)
    assert len({r.backend for r in results}) == 1, shares(results)


def test_no_endpoints_is_refused_at_once(env: NftEnv) -> None:
    svc = env.create_service("empty")
    element = f"{cluster_ip(svc)} . tcp . 80"

    def listed() -> bool:
        out = env.node.run("nft", "list", "set", "ip", SHARED_TABLE, "no-endpoint-services")
        return element in out

    wait_for(listed, 10, f"{element} in no-endpoint-services", 0.05)
    results = requests(env.node, cluster_ip(svc), 80, 5)
    assert all(r.status == "refused" and r.seconds < 0.5 for r in results), results
    assert set(env.trace(env.node.address, cluster_ip(svc), 80)["outcomes"]) == {"reject"}


def test_removed_endpoint_gets_no_new_connections_within_2s(env: NftEnv) -> None:
    svc = env.create_service("shrink")
    env.put_slice("shrink", BACKENDS)
    env.wait_rules(env.endpoint("shrink", BACKENDS[2]))
    changed = time.time()
    env.put_slice("shrink", BACKENDS[:2])
    results = requests(env.node, cluster_ip(svc), 80, 80, interval=0.04)
    late = [r for r in results if r.backend == BACKENDS[2] and r.start > changed + 2.0]
    assert not late, late
    assert all(r.status == "ok" for r in results)
    last_hit = max((r.start for r in results if r.backend == BACKENDS[2]), default=changed)
    print(f"removed endpoint last reached {last_hit - changed:.2f}s after the change")
    history = env.debug("/debug/rules")["history"]
    partial = [h for h in history if f"{env.ns}/shrink" in h["changed"] and not h["full"]]
    assert partial and not partial[0]["error"], history


def test_udp_flow_moves_when_its_endpoint_goes(env: NftEnv) -> None:
    """One UDP socket is one conntrack entry: the proxy flushes it when its endpoint goes."""
    svc = env.create_service("flip", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    env.put_slice("flip", BACKENDS[:1], proto="UDP", name="dns")
    env.wait_rules(env.endpoint("flip", BACKENDS[0], port="dns", proto="udp"))
    client = subprocess.Popen(
        client_command(env.node, cluster_ip(svc), 53, 60, interval=0.05, proto="udp1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.8)
    changed = time.time()
    env.put_slice("flip", BACKENDS[1:2], proto="UDP", name="dns")
    out, _ = client.communicate(timeout=60)
    rows = json.loads(out)
    answers = [(t, body.partition(" ")[0]) for t, _, status, body in rows if status == "ok"]
    assert answers[0][1] == BACKENDS[0]
    late = [t - changed for t, b in answers if b == BACKENDS[0] and t > changed + 2.0]
    assert not late, late
    assert answers[-1][1] == BACKENDS[1], answers[-5:]
    assert any(h["conntrack_flushed"] >= 1 for h in env.debug("/debug/rules")["history"])


def test_restart_after_sigkill_keeps_traffic_flowing(env: NftEnv) -> None:
    svc = env.create_service("steady")
    env.put_slice("steady", BACKENDS)
    env.wait_rules(env.endpoint("steady", BACKENDS[2]))
    client = subprocess.Popen(
        client_command(env.node, cluster_ip(svc), 80, 150, interval=0.03, proto="tcp"),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    pid = proxyproc.proxy_daemon(env.spec, NODE).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # no goodbye: the tables must simply stay
    later = env.create_service("while-down")
    env.put_slice("while-down", BACKENDS[:1])
    time.sleep(1.0)
    assert len(env.our_tables()) == 17
    t0 = time.monotonic()
    start_proxy(env.spec, NODE, env.node, "nftables")
    restart = time.monotonic() - t0
    out, _ = client.communicate(timeout=60)
    statuses = Counter(row[2] for row in json.loads(out))
    assert statuses == {"ok": 150}, statuses
    first = env.debug("/debug/rules")["history"][-1]
    assert first["full"] and not first["error"]
    results = requests(env.node, cluster_ip(later), 80, 3)
    assert {r.backend for r in results} == {BACKENDS[0]}
    print(f"proxy restart to first full sync: {restart:.2f}s")


def test_metrics_and_rules_view(env: NftEnv) -> None:
    import datetime as dt

    env.create_service("timed")
    body = env.slice_body("timed", BACKENDS[:1])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": stamp}
    env.put_slice_body(body)
    env.wait_rules(env.endpoint("timed", BACKENDS[0]))
    url = f"http://127.0.0.1:{env.spec.ports.proxy_metrics}/metrics"
    status, raw = proxyproc.get_in_netns(env.node.netns, url)
    assert status == 200
    samples = dict(
        line.rsplit(" ", 1)
        for line in raw.decode().splitlines()
        if line and not line.startswith("#")
    )
    assert float(samples["kubeproxy_network_programming_duration_seconds_count"]) >= 1
    assert float(samples["kubeproxy_sync_full_proxy_rules_duration_seconds_count"]) >= 1
    assert float(samples["kubeproxy_sync_partial_proxy_rules_duration_seconds_count"]) >= 1
    assert float(samples["kubeproxy_sync_proxy_rules_last_timestamp_seconds"]) > time.time() - 60
    assert samples["kubeproxy_sync_proxy_rules_nftables_sync_failures_total"] == "0.0"
    assert not [name for name in samples if "iptables" in name]
    history = env.debug("/debug/rules", {"text": "1"})["history"]
    texts = [h["text"] for h in history if f"{env.ns}/timed" in h["changed"]]
    assert texts and f"dnat to {BACKENDS[0]}:{BACKEND_PORT}" in texts[0], history[0]
    explained = env.debug("/debug/explain", {"svc": f"{env.ns}/timed"})
    assert explained["found"] and BACKENDS[0] in json.dumps(explained), explained


def test_proxy_log_has_no_errors(env: NftEnv) -> None:
    log = proxyproc.proxy_daemon(env.spec, NODE).log_file.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert "synced full=True ok=True" in log and "synced full=False ok=True" in log


def test_cleanup_removes_every_table_of_ours(env: NftEnv) -> None:
    """Last: it stops the proxy (which would otherwise put its tables back)."""
    env.node.run("nft", "add", "table", "ip", "pykube-proxyish")  # not ours, stays
    try:
        proxyproc.stop_proxy(env.spec, NODE)
        assert len(env.our_tables()) == 17
        report = proxyproc.remove_rules(env.node.netns)
        assert report.endswith(", 17 nftables tables"), report
        assert env.our_tables() == []
        assert "pykube-proxyish" in env.node.run("nft", "list", "tables")
        assert "nftables" not in proxyproc.remove_rules(env.node.netns)
    finally:
        env.node.run("nft", "delete", "table", "ip", "pykube-proxyish")


# ---- the proxier alone against the kernel, in a scratch netns ----------------------------------

CONFIG = model.ProxyConfig(node_name="n1", node_ips=("10.9.0.1",), cluster_cidr="10.88.0.0/16")


def _open(path: str) -> NftNetlink:
    with netns.entered(path):
        return NftNetlink()  # the socket stays in the netns it was made in


@pytest.fixture
def scratch(root_required: None) -> Iterator[tuple[str, NftNetlink]]:
    name = f"pkn3s{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    sockets: list[NftNetlink] = []
    try:
        with ThreadPoolExecutor(1) as pool:
            sockets.append(pool.submit(_open, f"/run/netns/{name}").result())
        yield name, sockets[0]
    finally:
        for sock in sockets:
            sock.close()
        subprocess.run(["ip", "netns", "delete", name], check=False)


class Sabotaged:
    """The real socket; while `bad`, each batch ends with an op the kernel refuses."""

    def __init__(self, nl: NftNetlink) -> None:
        self.nl = nl
        self.bad = False

    def apply(self, ops: Sequence[ir.Op]) -> None:
        if self.bad:
            ops = [*ops, ir.DeleteChain(SHARED_TABLE, "no-such-chain")]
        self.nl.apply(ops)

    def tables(self, prefix: str) -> dict[str, TableObjects]:
        return self.nl.tables(prefix)

    def close(self) -> None:
        self.nl.close()


def _listing(name: str) -> str:
    r = subprocess.run(
        ["ip", "netns", "exec", name, "nft", "list", "ruleset"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _proxier(kernel: Sabotaged) -> Proxier:
    return Proxier(
        CONFIG, NftBackend(kernel), metrics=ProxyMetrics(CollectorRegistry()), history=History()
    )


def test_a_refused_batch_changes_nothing_and_a_restart_drops_stale_chains(
    scratch: tuple[str, NftNetlink],
) -> None:
    name, nl = scratch
    kernel = Sabotaged(nl)
    p = _proxier(kernel)
    p.on_service(sync(service("web", "10.0.0.10"), service("db", "10.0.0.11", 5432)))
    p.on_slice(
        sync(
            endpoint_slice("web-1", "web", ["10.88.1.2"]),
            endpoint_slice("db-1", "db", ["10.88.1.3"], 5432),
        )
    )
    assert not p.sync().error
    before = _listing(name)
    assert "dnat to 10.88.1.2:8080" in before and "dnat to 10.88.1.3:5432" in before
    kernel.bad = True
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.9"])))
    failed = p.sync()
    assert not failed.full and "no-such-chain" in failed.error, failed.error
    assert _listing(name) == before  # all or nothing
    kernel.bad = False
    retry = p.sync()
    assert retry.full and not retry.error, retry.error
    after = _listing(name)
    assert "dnat to 10.88.1.9:8080" in after and "10.88.1.2" not in after
    # A new process (a new socket, nothing remembered) whose state lacks "web": its first,
    # full sync finds web's chains in the kernel and deletes them.
    restarted = _proxier(Sabotaged(_reopen(name)))
    try:
        restarted.on_service(sync(service("db", "10.0.0.11", 5432)))
        restarted.on_slice(sync(endpoint_slice("db-1", "db", ["10.88.1.3"], 5432)))
        record = restarted.sync()
        assert record.full and not record.error, record.error
        assert any("default/web/" in chain for chain in record.removed), record.removed
        final = _listing(name)
        assert "default/web/" not in final and "dnat to 10.88.1.3:5432" in final
    finally:
        restarted.backend.close()


def _reopen(name: str) -> NftNetlink:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_open, f"/run/netns/{name}").result()
