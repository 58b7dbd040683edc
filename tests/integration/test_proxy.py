"""`pykubelet proxy` end to end, in each mode (iptables, nftables) that runs here: the real
control plane, the proxy in a netns "node" (apiserver forwarded in), backends in another netns
host, selector-less Services with hand-made EndpointSlices. The same behaviour is checked in
every mode, against what the kernel does: traffic, policies, restarts, conntrack, metrics and the
`net` views; the few checks of one mode's own layout are marked with only(). IPVS mode cannot run
on this kernel (tests/unit/net/proxy/ipvs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from cluster import proxyproc
from cluster import up as cluster
from cluster.spec import ClusterSpec

from .netns_hosts import Host
from .podutil import api_json, wait_for
from .proxyenv import BACKEND_PORT, proxy_env, start_proxy

SHARED_TABLE = "pykube-proxy"


@dataclass(frozen=True)
class Mode:
    """One proxy mode's world: its node and subnet, and how its rules read in the kernel."""

    name: str
    node: str
    subnet: str
    failures_metric: str
    text_kind: str
    """How `net rules --with-text` heads the newest input, and a line every input has."""
    text_marker: str

    @property
    def backends(self) -> list[str]:
        return [f"{self.subnet}.{i}" for i in (11, 12, 13)]

    @property
    def external_ip(self) -> str:
        return f"{self.subnet}.200"

    @property
    def lb_ip(self) -> str:
        return f"{self.subnet}.201"


MODES = {
    "iptables": Mode(
        "iptables",
        "proxy-node",
        "10.124.0",
        "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
        "restore input",
        "COMMIT",
    ),
    "nftables": Mode(
        "nftables",
        "proxy-node-nft",
        "10.125.0",
        "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
        "nftables batch",
        "add rule ip pykube-proxy-",
    ),
}

TestFunction = TypeVar("TestFunction", bound=Callable[..., None])


def only(mode: str) -> Callable[[TestFunction], TestFunction]:
    """Run a test in `mode` only (a check of that mode's own layout)."""

    def mark(test: TestFunction) -> TestFunction:
        test.modes = (mode,)  # type: ignore[attr-defined]
        return test

    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that takes `env` runs once per mode (one env at a time, mode after mode)."""
    if "env" in metafunc.fixturenames:
        modes = getattr(metafunc.function, "modes", tuple(MODES))
        metafunc.parametrize("env", modes, indirect=True, scope="module")


CLIENT_SCRIPT = r"""
import json, socket, sys, time
ip, port, count, interval, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    float(sys.argv[4]), sys.argv[5]
out = []
one = None
for _ in range(count):
    t = time.time()
    try:
        if proto == "udp1":  # one socket (one conntrack entry) for every datagram
            one = one or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            one.settimeout(0.5); one.sendto(b"hi", (ip, port)); body = one.recv(1024).decode()
            s = None
        elif proto == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
            s.sendto(b"hi", (ip, port)); body = s.recv(1024).decode()
        else:
            s = socket.create_connection((ip, port), timeout=2)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n"); body = b""
            while chunk := s.recv(1024): body += chunk
            body = body.decode().split("\r\n\r\n", 1)[-1]
        s and s.close(); out.append([t, time.time() - t, "ok", body])
    except ConnectionRefusedError: out.append([t, time.time() - t, "refused", ""])
    except OSError as e: out.append([t, time.time() - t, type(e).__name__, str(e)])
    if interval: time.sleep(interval)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Result:
    start: float
    seconds: float
    status: str
    backend: str
    """Which backend answered ("" unless ok)."""
    client_seen_as: str


def client_command(
    host: Host, ip: str, port: int, count: int, *, interval: float = 0.0, proto: str = "tcp"
) -> list[str]:
    """CLIENT_SCRIPT run inside `host`'s netns: `count` requests to ip:port, JSON rows out."""
    return [
        "nsenter",
        f"--net=/run/netns/{host.netns}",
        "--",
        sys.executable,
        "-c",
        CLIENT_SCRIPT,
        ip,
        str(port),
        str(count),
        str(interval),
        proto,
    ]


def requests(
    host: Host, ip: str, port: int, count: int, *, interval: float = 0.0, proto: str = "tcp"
) -> list[Result]:
    r = subprocess.run(
        client_command(host, ip, port, count, interval=interval, proto=proto),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = []
    for start, seconds, status, body in json.loads(r.stdout):
        backend, _, seen = body.partition(" ") if status == "ok" else ("", "", "")
        out.append(Result(start, seconds, status, backend, seen))
    return out


@dataclass
class Env:
    spec: ClusterSpec
    ns: str
    node: Host
    backend_host: Host
    client: Host
    mode: Mode = MODES["iptables"]

    @property
    def backends(self) -> list[str]:
        return self.mode.backends

    def create_service(self, name: str, **spec: Any) -> dict[str, Any]:
        ports = spec.pop("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": ports, **spec},
        }
        return api_json(
            self.spec, f"/api/v1/namespaces/{self.ns}/services", method="POST", body=body
        )

    def slice_body(
        self, svc: str, ips: list[str], *, proto: str = "TCP", name: str = "http"
    ) -> dict[str, Any]:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{svc}-manual",
                "labels": {
                    "kubernetes.io/service-name": svc,
                    "endpointslice.kubernetes.io/managed-by": "pykubelet-tests",
                },
            },
            "addressType": "IPv4",
            "ports": [{"name": name, "port": BACKEND_PORT, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
        }

    def put_slice(self, svc: str, ips: list[str], **kw: Any) -> None:
        self.put_slice_body(self.slice_body(svc, ips, **kw))

    def put_slice_body(self, body: dict[str, Any]) -> None:
        """Create the EndpointSlice, or replace it when it exists."""
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self.ns}/endpointslices"
        name = body["metadata"]["name"]
        body["metadata"].pop("resourceVersion", None)
        status, raw = cluster.api(self.spec, f"{path}/{name}")
        if status == 200:
            body["metadata"]["resourceVersion"] = json.loads(raw)["metadata"]["resourceVersion"]
            api_json(self.spec, f"{path}/{name}", method="PUT", body=body)
        else:
            api_json(self.spec, path, method="POST", body=body)

    def debug(self, path: str, params: dict[str, str] | None = None) -> Any:
        import urllib.parse

        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.spec.ports.proxy_metrics}{path}{query}"
        status, body = proxyproc.get_in_netns(self.node.netns, url, timeout=10)
        assert status == 200, body
        return json.loads(body)

    # ---- the kernel's rules, as each mode lays them out ----------------------------------------
    def ruleset(self) -> str:
        if self.mode.name == "nftables":
            return self.node.run("nft", "list", "ruleset")
        return self.node.run("iptables-save")

    def wait_rules(self, needle: str, present: bool = True, timeout: float = 10) -> float:
        """Seconds until the node's rules (do not) hold `needle`."""
        t0 = time.monotonic()

        def check() -> bool:
            return (needle in self.ruleset()) == present

        try:
            wait_for(check, timeout, f"rule {'with' if present else 'without'} {needle}", 0.05)
        except AssertionError as exc:
            log = proxyproc.proxy_daemon(self.spec, self.mode.node).log_file.read_text()
            raise AssertionError(f"{exc}\nproxy log:\n{log[-3000:]}") from None
        return time.monotonic() - t0

    def endpoint(self, svc: str, ip: str, *, port: str = "http", proto: str = "tcp") -> str:
        """What names an endpoint of a Service port in the rules (upstream's comments in
        iptables mode, its endpoint chain's name in nftables mode)."""
        if self.mode.name == "nftables":
            return f"{self.ns}/{svc}/{proto}/{port}__{ip}/{BACKEND_PORT}"
        return f"{self.ns}/{svc}:{port} -> {ip}"

    def wait_endpoint(self, svc: str, ip: str, **kw: str) -> float:
        return self.wait_rules(self.endpoint(svc, ip, **kw))

    def wait_refused(self, svc: dict[str, Any], *, local: bool = False) -> None:
        """Until the rules refuse the Service's cluster IP:80: REJECT without endpoints, DROP
        without local ones (a filter rule in iptables mode, a set element in nftables mode)."""
        name = svc["metadata"]["name"]
        if self.mode.name == "iptables":
            what = "has no local endpoints" if local else "has no endpoints"
            self.wait_rules(f"{self.ns}/{name}:http {what}")
            return
        element = f"{cluster_ip(svc)} . tcp . 80"
        table = "no-local-endpoint-services" if local else "no-endpoint-services"

        def listed() -> bool:
            return element in self.node.run("nft", "list", "set", "ip", SHARED_TABLE, table)

        wait_for(listed, 10, f"{element} in {table}", 0.05)

    def address(self, ip: str, port: int = 80) -> str:
        """What names a frontend address in the rules."""
        if self.mode.name == "nftables":
            return f"{ip} . tcp . {port}"
        return f"-d {ip}/32"

    def our_tables(self) -> list[str]:
        out = self.node.run("nft", "list", "tables")
        names = [line.split()[-1] for line in out.splitlines() if line.startswith("table ip ")]
        return [t for t in names if t == SHARED_TABLE or t.startswith(f"{SHARED_TABLE}-")]

    # ---- traffic and views -----------------------------------------------------------------------
    def assert_only_backend(self, client: Host, dst: str, port: int, backend: str) -> None:
        """Ten requests from `client` all reach `backend`, and trace predicts that DNAT only."""
        results = requests(client, dst, port, 10)
        assert {r.backend for r in results} == {backend}, results
        outcomes = self.trace(client.address, dst, port)["outcomes"]
        assert set(outcomes) == {f"dnat {backend}:{BACKEND_PORT}"}

    def trace(self, src: str, dst: str, port: int, proto: str = "tcp") -> dict[str, Any]:
        params = {"src": src, "dst": dst, "port": str(port), "proto": proto}
        data: dict[str, Any] = self.debug("/debug/trace", params)
        return data

    def net_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "nsenter",
                f"--net=/run/netns/{self.node.netns}",
                "--",
                sys.executable,
                "-m",
                "pykubelet.cli",
                "net",
                *args,
                f"--metrics-address=127.0.0.1:{self.spec.ports.proxy_metrics}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def restart_proxy(self) -> None:
        start_proxy(self.spec, self.mode.node, self.node, self.mode.name)


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest, cluster_spec: ClusterSpec) -> Iterator[Env]:
    mode = MODES[request.param]

    def make(spec: ClusterSpec, ns: str, node: Host, backend_host: Host, client: Host) -> Env:
        return Env(spec, ns, node, backend_host, client, mode)

    with proxy_env(
        cluster_spec,
        make,
        node_name=mode.node,
        subnet=mode.subnet,
        backends=mode.backends,
        routed=(mode.external_ip, mode.lb_ip),
        tag=f"pk{mode.name[:2]}{os.getpid() % 100000}",
        mode=mode.name,
    ) as e:
        yield e


def shares(results: list[Result]) -> dict[str, float]:
    ok = [r.backend for r in results if r.status == "ok"]
    return {b: n / len(results) for b, n in Counter(ok).items()}


def cluster_ip(svc: dict[str, Any]) -> str:
    return str(svc["spec"]["clusterIP"])


@only("nftables")
def test_tables_are_sharded_and_iptables_is_untouched(env: Env) -> None:
    assert len(env.our_tables()) == 17, env.our_tables()  # the shared table and 16 shards
    assert "KUBE-" not in env.node.run("iptables-save")
    rules = env.debug("/debug/rules")
    assert rules["mode"] == "nftables" and rules["backend"] == "netlink"
    assert rules["history"][-1]["full"] and not rules["history"][-1]["error"]


def test_clusterip_spreads_over_three_endpoints(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("spread")
    env.put_slice("spread", backends)
    env.wait_endpoint("spread", backends[2])
    results = requests(env.node, cluster_ip(svc), 80, 300)
    share = shares(results)
    assert [r.status for r in results].count("ok") == 300, Counter(r.status for r in results)
    assert set(share) == set(backends)
    assert all(0.20 <= s <= 0.46 for s in share.values()), share
    # The rule model predicts the same set of endpoints, each with probability 1/3.
    outcomes = env.trace(env.node.address, cluster_ip(svc), 80)["outcomes"]
    assert {k.removeprefix("dnat ") for k in outcomes} == {f"{b}:{BACKEND_PORT}" for b in backends}
    assert all(abs(p - 1 / 3) < 1e-6 for p in outcomes.values())


def test_udp_clusterip(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    env.put_slice("dns", backends[:1], proto="UDP", name="dns")
    env.wait_endpoint("dns", backends[0], port="dns", proto="udp")
    results = requests(env.node, cluster_ip(svc), 53, 5, proto="udp")
    assert {r.backend for r in results} == {backends[0]}
    explained = env.debug("/debug/explain", {"svc": f"{env.ns}/dns"})
    flows = [c for c in explained["conntrack"] if c["dst"] == cluster_ip(svc)]
    assert flows and all(c["reply_src"] == backends[0] for c in flows), explained["conntrack"]


def test_udp_flow_moves_when_its_endpoint_goes(env: Env) -> None:
    """One UDP socket keeps one conntrack entry: without flushing it when the endpoint goes,
    the flow would keep going to the removed endpoint for as long as it keeps sending."""
    backends = env.backends
    svc = env.create_service("flip", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    env.put_slice("flip", backends[:1], proto="UDP", name="dns")
    env.wait_endpoint("flip", backends[0], port="dns", proto="udp")
    client = subprocess.Popen(
        client_command(env.node, cluster_ip(svc), 53, 60, interval=0.05, proto="udp1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.8)
    changed = time.time()
    env.put_slice("flip", backends[1:2], proto="UDP", name="dns")
    out, _ = client.communicate(timeout=60)
    rows = json.loads(out)
    answers = [(t, body.partition(" ")[0]) for t, _, status, body in rows if status == "ok"]
    assert answers[0][1] == backends[0]
    late = [t - changed for t, b in answers if b == backends[0] and t > changed + 2.0]
    assert not late, late
    assert answers[-1][1] == backends[1], answers[-5:]
    assert any(h["conntrack_flushed"] >= 1 for h in env.debug("/debug/rules")["history"])


def test_nodeport_answers_from_another_host(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("np", type="NodePort")
    env.put_slice("np", backends[:2])
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_endpoint("np", backends[1])
    results = requests(env.client, env.node.address, node_port, 20)
    assert all(r.status == "ok" for r in results), results
    seen = {r.backend for r in results}
    assert seen <= set(backends[:2]) and seen
    # Masqueraded (externalTrafficPolicy Cluster): backends see the node, not the client.
    assert {r.client_seen_as for r in results} == {env.node.address}
    trace = env.trace(env.client.address, env.node.address, node_port)
    assert {k.removeprefix("dnat ").split(":")[0] for k in trace["outcomes"]} == set(backends[:2])
    assert all(b["masquerade"] for b in trace["branches"])


def test_nodeport_local_policy_keeps_the_client_address(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("nplocal", type="NodePort", externalTrafficPolicy="Local")
    body = env.slice_body("nplocal", backends[:1])
    body["endpoints"][0]["nodeName"] = env.mode.node
    env.put_slice_body(body)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_endpoint("nplocal", backends[0])
    results = requests(env.client, env.node.address, node_port, 5)
    assert {r.backend for r in results} == {backends[0]}, results
    assert {r.client_seen_as for r in results} == {env.client.address}
    trace = env.trace(env.client.address, env.node.address, node_port)
    assert not any(b["masquerade"] for b in trace["branches"])


def test_external_ip(env: Env) -> None:
    backends = env.backends
    env.create_service("ext", externalIPs=[env.mode.external_ip])
    env.put_slice("ext", backends[2:])
    env.wait_endpoint("ext", backends[2])
    env.assert_only_backend(env.client, env.mode.external_ip, 80, backends[2])


def test_load_balancer_ingress_ip(env: Env) -> None:
    backends, lb_ip = env.backends, env.mode.lb_ip
    svc = env.create_service("lb", type="LoadBalancer")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}  # as a cloud's controller
    api_json(env.spec, f"/api/v1/namespaces/{env.ns}/services/lb/status", method="PUT", body=svc)
    env.put_slice("lb", backends[1:2])
    env.wait_rules(env.address(lb_ip))
    env.wait_endpoint("lb", backends[1])
    env.assert_only_backend(env.client, lb_ip, 80, backends[1])


def test_client_ip_affinity_sticks(env: Env) -> None:
    backends = env.backends
    svc = env.create_service(
        "sticky",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    env.put_slice("sticky", backends)
    env.wait_endpoint("sticky", backends[2])
    results = requests(env.node, cluster_ip(svc), 80, 40)
    assert all(r.status == "ok" for r in results)
    assert len({r.backend for r in results}) == 1, shares(results)


def test_internal_local_policy_uses_only_this_nodes_endpoints(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("itp", internalTrafficPolicy="Local")
    body = env.slice_body("itp", backends[:2])
    body["endpoints"][0]["nodeName"] = "some-other-node"
    body["endpoints"][1]["nodeName"] = "some-other-node"
    env.put_slice_body(body)
    env.wait_refused(svc, local=True)
    results = requests(env.node, cluster_ip(svc), 80, 2)
    assert [r.status for r in results] == ["TimeoutError"] * 2, results  # dropped
    assert set(env.trace(env.node.address, cluster_ip(svc), 80)["outcomes"]) == {"drop"}
    body["endpoints"][1]["nodeName"] = env.mode.node
    env.put_slice_body(body)
    env.wait_endpoint("itp", backends[1])
    env.assert_only_backend(env.node, cluster_ip(svc), 80, backends[1])


def test_serving_terminating_endpoints_are_the_fallback(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("draining")
    body = env.slice_body("draining", backends[:2])
    body["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    body["endpoints"][1]["conditions"] = {"ready": False, "serving": False, "terminating": True}
    env.put_slice_body(body)
    env.wait_endpoint("draining", backends[0])
    env.assert_only_backend(env.node, cluster_ip(svc), 80, backends[0])


def test_no_endpoints_is_refused_at_once(env: Env) -> None:
    svc = env.create_service("empty")
    env.wait_refused(svc)
    results = requests(env.node, cluster_ip(svc), 80, 5)
    assert all(r.status == "refused" and r.seconds < 0.5 for r in results), results
    trace = env.trace(env.node.address, cluster_ip(svc), 80)
    assert set(trace["outcomes"]) == {"reject"}


def test_removed_endpoint_gets_no_new_connections_within_2s(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("shrink")
    env.put_slice("shrink", backends)
    env.wait_endpoint("shrink", backends[2])
    changed = time.time()
    env.put_slice("shrink", backends[:2])
    results = requests(env.node, cluster_ip(svc), 80, 80, interval=0.04)
    late = [r for r in results if r.backend == backends[2] and r.start > changed + 2.0]
    assert not late, late
    assert all(r.status == "ok" for r in results)
    last_hit = max((r.start for r in results if r.backend == backends[2]), default=changed)
    print(f"removed endpoint last reached {last_hit - changed:.2f}s after the change")
    history = env.debug("/debug/rules")["history"]
    partial = [h for h in history if f"{env.ns}/shrink" in h["changed"] and not h["full"]]
    assert partial and not partial[0]["error"], history


def test_restart_keeps_traffic_flowing_and_rebuilds(env: Env) -> None:
    backends = env.backends
    svc = env.create_service("steady")
    env.put_slice("steady", backends)
    env.wait_endpoint("steady", backends[2])
    client = subprocess.Popen(
        client_command(env.node, cluster_ip(svc), 80, 150, interval=0.03, proto="tcp"),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    pid = proxyproc.proxy_daemon(env.spec, env.mode.node).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # no goodbye: the rules must simply stay
    # While it is down: rules stay, and a change made now must show up after the restart.
    later = env.create_service("while-down")
    env.put_slice("while-down", backends[:1])
    time.sleep(1.0)
    assert env.endpoint("steady", backends[2]) in env.ruleset()
    t0 = time.monotonic()
    env.restart_proxy()
    restart = time.monotonic() - t0
    out, _ = client.communicate(timeout=60)
    statuses = Counter(row[2] for row in json.loads(out))
    assert statuses == {"ok": 150}, statuses
    first = env.debug("/debug/rules")["history"][-1]
    assert first["full"] and not first["error"]
    results = requests(env.node, cluster_ip(later), 80, 3)
    assert {r.backend for r in results} == {backends[0]}
    print(f"proxy restart to first full sync: {restart:.2f}s")


def test_net_views(env: Env) -> None:
    backends = env.backends
    port = env.create_service("viewed", type="NodePort")["spec"]["ports"][0]["nodePort"]
    env.put_slice("viewed", backends[:2])
    env.wait_endpoint("viewed", backends[1])
    r = env.net_cli("rules")
    assert r.returncode == 0, r.stderr
    assert f"node {env.mode.node}" in r.stdout and f"mode {env.mode.name}" in r.stdout
    assert "full" in r.stdout and "DURATION" in r.stdout
    print(r.stdout)
    r = env.net_cli("rules", "--with-text")
    assert r.returncode == 0 and f"# {env.mode.text_kind} of the sync at" in r.stdout
    assert env.mode.text_marker in r.stdout
    r = env.net_cli("rules", "-o", "json")
    data = json.loads(r.stdout)
    assert data["synced"] and data["history"] and data["ruleCount"] > 0
    r = env.net_cli("explain", "svc", f"{env.ns}/viewed")
    assert r.returncode == 0, r.stderr
    assert f"{env.ns}/viewed" in r.stdout
    assert backends[0] in r.stdout and backends[1] in r.stdout
    print(r.stdout)
    r = env.net_cli("explain", "svc", f"{env.ns}/missing-{uuid.uuid4().hex[:4]}")
    assert r.returncode == 1 and "not found" in r.stderr
    r = env.net_cli("trace", f"--src={env.client.address}", f"--dst={env.node.address}:{port}")
    assert r.returncode == 0, r.stderr
    assert "DNAT to" in r.stdout and backends[0] in r.stdout
    print(r.stdout)


def test_node_routes_follow_other_nodes(env: Env) -> None:
    """--node-routes=host-gw: another Node's podCIDR is routed via its InternalIP, and the
    route goes when the Node does."""
    name = f"proxy-peer-{uuid.uuid4().hex[:6]}"
    base = env.spec.cluster_cidr.split(".")
    cidr = f"{base[0]}.{base[1]}.250.0/24"
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": env.backend_host.address}]},
    }
    api_json(env.spec, "/api/v1/nodes", method="POST", body=body)
    try:

        def route() -> str:
            return env.node.run("ip", "-4", "route", "show", cidr).strip()

        wait_for(lambda: f"via {env.backend_host.address}" in route(), 10, f"route to {cidr}")
    finally:
        api_json(env.spec, f"/api/v1/nodes/{name}", method="DELETE")
    wait_for(lambda: route() == "", 10, f"route to {cidr} removed")


def test_metrics_with_upstream_names(env: Env) -> None:
    import datetime as dt

    env.create_service("timed")
    body = env.slice_body("timed", env.backends[:1])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": stamp}
    env.put_slice_body(body)
    env.wait_endpoint("timed", env.backends[0])
    url = f"http://127.0.0.1:{env.spec.ports.proxy_metrics}/metrics"
    status, raw = proxyproc.get_in_netns(env.node.netns, url)
    text = raw.decode()
    assert status == 200
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(samples["kubeproxy_network_programming_duration_seconds_count"]) >= 1
    assert float(samples["kubeproxy_sync_full_proxy_rules_duration_seconds_count"]) >= 1
    assert float(samples["kubeproxy_sync_partial_proxy_rules_duration_seconds_count"]) >= 1
    assert float(samples["kubeproxy_sync_proxy_rules_last_timestamp_seconds"]) > time.time() - 60
    assert samples[env.mode.failures_metric] == "0.0"
    if env.mode.name == "nftables":  # upstream's nftables mode registers no iptables metric
        assert not [name for name in samples if "iptables" in name]
    code, health = proxyproc.healthz(env.spec, env.node.netns)
    assert code == 200 and set(health) == {"lastUpdated", "currentTime", "nodeEligible"}
    history = env.debug("/debug/rules", {"text": "1"})["history"]
    texts = [h["text"] for h in history if f"{env.ns}/timed" in h["changed"] and h["text"]]
    assert texts and env.backends[0] in texts[0], history[0]


def test_kube_proxy_identity_is_upstreams_node_proxier(cluster_spec: ClusterSpec) -> None:
    binding = api_json(
        cluster_spec, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:node-proxier"
    )
    assert binding["roleRef"]["name"] == "system:node-proxier"
    assert {
        "kind": "User",
        "apiGroup": "rbac.authorization.k8s.io",
        "name": "system:kube-proxy",
    } in (binding["subjects"])
    kubeconfig = cluster_spec.kubeconfig("kube-proxy").read_text()
    assert "kube-proxy.crt" in kubeconfig


def test_proxy_log_has_no_errors(env: Env) -> None:
    log = proxyproc.proxy_daemon(env.spec, env.mode.node).log_file.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert "synced full=True ok=True" in log and "synced full=False ok=True" in log


@only("nftables")
def test_cleanup_removes_every_table_of_ours(env: Env) -> None:
    """Last: it stops the proxy (which would otherwise put its tables back)."""
    env.node.run("nft", "add", "table", "ip", "pykube-proxyish")  # not ours, stays
    try:
        proxyproc.stop_proxy(env.spec, env.mode.node)
        assert len(env.our_tables()) == 17
        report = proxyproc.remove_rules(env.node.netns)
        assert report.endswith(", 17 nftables tables"), report
        assert env.our_tables() == []
        assert "pykube-proxyish" in env.node.run("nft", "list", "tables")
        assert "nftables" not in proxyproc.remove_rules(env.node.netns)
    finally:
        env.node.run("nft", "delete", "table", "ip", "pykube-proxyish")
