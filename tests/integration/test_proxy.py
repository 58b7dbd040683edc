"""`pykubelet proxy` end to end: the real control plane, the proxy in a netns "node" (apiserver
forwarded in), backends in another netns host, selector-less Services with hand-made
EndpointSlices. Traffic, restarts and `net trace` are checked against what the kernel does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cluster import proxyproc
from cluster import up as cluster
from cluster.spec import ClusterSpec

from .netns_hosts import Host
from .podutil import api_json, wait_for
from .proxyenv import BACKEND_PORT, proxy_env

NODE = "proxy-node"
SUBNET = "10.124.0"
BACKENDS = [f"{SUBNET}.{i}" for i in (11, 12, 13)]
EXTERNAL_IP = f"{SUBNET}.200"
LB_IP = f"{SUBNET}.201"

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

    def wait_rules(self, needle: str, present: bool = True, timeout: float = 10) -> float:
        """Seconds until the node's rules (do not) hold `needle`."""
        t0 = time.monotonic()

        def check() -> bool:
            saved = self.node.run("iptables-save")
            return (needle in saved) == present

        wait_for(check, timeout, f"rule {'with' if present else 'without'} {needle}", 0.05)
        return time.monotonic() - t0

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


@pytest.fixture(scope="module")
def env(cluster_spec: ClusterSpec) -> Iterator[Env]:
    with proxy_env(
        cluster_spec,
        Env,
        node_name=NODE,
        subnet=SUBNET,
        backends=BACKENDS,
        routed=(EXTERNAL_IP, LB_IP),
        tag=f"pkp{os.getpid() % 100000}",
    ) as e:
        yield e


def shares(results: list[Result]) -> dict[str, float]:
    ok = [r.backend for r in results if r.status == "ok"]
    return {b: n / len(results) for b, n in Counter(ok).items()}


def cluster_ip(svc: dict[str, Any]) -> str:
    return str(svc["spec"]["clusterIP"])


def test_clusterip_spreads_over_three_endpoints(env: Env) -> None:
    svc = env.create_service("spread")
    env.put_slice("spread", BACKENDS)
    env.wait_rules(f"{env.ns}/spread:http -> {BACKENDS[2]}")
    results = requests(env.node, cluster_ip(svc), 80, 300)
    share = shares(results)
    assert [r.status for r in results].count("ok") == 300, Counter(r.status for r in results)
    assert set(share) == set(BACKENDS)
    assert all(0.20 <= s <= 0.46 for s in share.values()), share
    # The rule model predicts the same set of endpoints, each with probability 1/3.
    outcomes = env.trace(env.node.address, cluster_ip(svc), 80)["outcomes"]
    assert {k.removeprefix("dnat ") for k in outcomes} == {f"{b}:{BACKEND_PORT}" for b in BACKENDS}
    assert all(abs(p - 1 / 3) < 1e-6 for p in outcomes.values())


def test_udp_clusterip(env: Env) -> None:
    svc = env.create_service("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    env.put_slice("dns", BACKENDS[:1], proto="UDP", name="dns")
    env.wait_rules(f"{env.ns}/dns:dns -> {BACKENDS[0]}")
    results = requests(env.node, cluster_ip(svc), 53, 5, proto="udp")
    assert {r.backend for r in results} == {BACKENDS[0]}
    explained = env.debug("/debug/explain", {"svc": f"{env.ns}/dns"})
    flows = [c for c in explained["conntrack"] if c["dst"] == cluster_ip(svc)]
    assert flows and all(c["reply_src"] == BACKENDS[0] for c in flows), explained["conntrack"]


def test_udp_flow_moves_when_its_endpoint_goes(env: Env) -> None:
    """One UDP socket keeps one conntrack entry: without flushing it when the endpoint goes,
    the flow would keep going to the removed endpoint for as long as it keeps sending."""
    svc = env.create_service("flip", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    env.put_slice("flip", BACKENDS[:1], proto="UDP", name="dns")
    env.wait_rules(f"{env.ns}/flip:dns -> {BACKENDS[0]}")
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


def test_nodeport_answers_from_another_host(env: Env) -> None:
    svc = env.create_service("np", type="NodePort")
    env.put_slice("np", BACKENDS[:2])
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_rules(f"{env.ns}/np:http -> {BACKENDS[1]}")
    results = requests(env.client, env.node.address, node_port, 20)
    assert all(r.status == "ok" for r in results), results
    seen = {r.backend for r in results}
    assert seen <= set(BACKENDS[:2]) and seen
    # Masqueraded (externalTrafficPolicy Cluster): backends see the node, not the client.
    assert {r.client_seen_as for r in results} == {env.node.address}
    trace = env.trace(env.client.address, env.node.address, node_port)
    assert {k.removeprefix("dnat ").split(":")[0] for k in trace["outcomes"]} == set(BACKENDS[:2])
    assert all(b["masquerade"] for b in trace["branches"])


def test_nodeport_local_policy_keeps_the_client_address(env: Env) -> None:
    svc = env.create_service("nplocal", type="NodePort", externalTrafficPolicy="Local")
    path = f"/apis/discovery.k8s.io/v1/namespaces/{env.ns}/endpointslices"
    body = env.slice_body("nplocal", BACKENDS[:1])
    body["endpoints"][0]["nodeName"] = NODE
    api_json(env.spec, path, method="POST", body=body)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_rules(f"{env.ns}/nplocal:http -> {BACKENDS[0]}")
    results = requests(env.client, env.node.address, node_port, 5)
    assert {r.backend for r in results} == {BACKENDS[0]}, results
    assert {r.client_seen_as for r in results} == {env.client.address}
    trace = env.trace(env.client.address, env.node.address, node_port)
    assert not any(b["masquerade"] for b in trace["branches"])


def test_external_ip(env: Env) -> None:
    env.create_service("ext", externalIPs=[EXTERNAL_IP])
    env.put_slice("ext", BACKENDS[2:])
    env.wait_rules(f"{env.ns}/ext:http -> {BACKENDS[2]}")
    env.assert_only_backend(env.client, EXTERNAL_IP, 80, BACKENDS[2])


def test_load_balancer_ingress_ip(env: Env) -> None:
    svc = env.create_service("lb", type="LoadBalancer")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}  # as a cloud's controller
    api_json(env.spec, f"/api/v1/namespaces/{env.ns}/services/lb/status", method="PUT", body=svc)
    env.put_slice("lb", BACKENDS[1:2])
    env.wait_rules(f"-d {LB_IP}/32")
    env.assert_only_backend(env.client, LB_IP, 80, BACKENDS[1])


def test_client_ip_affinity_sticks(env: Env) -> None:
    svc = env.create_service(
        "sticky",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    env.put_slice("sticky", BACKENDS)
    env.wait_rules(f"{env.ns}/sticky:http -> {BACKENDS[2]}")
    results = requests(env.node, cluster_ip(svc), 80, 40)
    assert all(r.status == "ok" for r in results)
    assert len({r.backend for r in results}) == 1, shares(results)


def test_internal_local_policy_uses_only_this_nodes_endpoints(env: Env) -> None:
    svc = env.create_service("itp", internalTrafficPolicy="Local")
    path = f"/apis/discovery.k8s.io/v1/namespaces/{env.ns}/endpointslices"
    body = env.slice_body("itp", BACKENDS[:2])
    body["endpoints"][0]["nodeName"] = "some-other-node"
    body["endpoints"][1]["nodeName"] = "some-other-node"
    api_json(env.spec, path, method="POST", body=body)
    env.wait_rules(f"{env.ns}/itp:http has no local endpoints")
    results = requests(env.node, cluster_ip(svc), 80, 2)
    assert [r.status for r in results] == ["TimeoutError"] * 2, results  # dropped
    assert set(env.trace(env.node.address, cluster_ip(svc), 80)["outcomes"]) == {"drop"}
    body["endpoints"][1]["nodeName"] = NODE
    env.put_slice_body(body)
    env.wait_rules(f"{env.ns}/itp:http -> {BACKENDS[1]}")
    env.assert_only_backend(env.node, cluster_ip(svc), 80, BACKENDS[1])


def test_serving_terminating_endpoints_are_the_fallback(env: Env) -> None:
    svc = env.create_service("draining")
    body = env.slice_body("draining", BACKENDS[:2])
    body["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    body["endpoints"][1]["conditions"] = {"ready": False, "serving": False, "terminating": True}
    env.put_slice_body(body)
    env.wait_rules(f"{env.ns}/draining:http -> {BACKENDS[0]}")
    env.assert_only_backend(env.node, cluster_ip(svc), 80, BACKENDS[0])


def test_no_endpoints_is_refused_at_once(env: Env) -> None:
    svc = env.create_service("empty")
    env.wait_rules(f"{env.ns}/empty:http has no endpoints")
    results = requests(env.node, cluster_ip(svc), 80, 5)
    assert all(r.status == "refused" and r.seconds < 0.5 for r in results), results
    trace = env.trace(env.node.address, cluster_ip(svc), 80)
    assert set(trace["outcomes"]) == {"reject"}


def test_removed_endpoint_gets_no_new_connections_within_2s(env: Env) -> None:
    svc = env.create_service("shrink")
    env.put_slice("shrink", BACKENDS)
    env.wait_rules(f"{env.ns}/shrink:http -> {BACKENDS[2]}")
    changed = time.time()
    env.put_slice("shrink", BACKENDS[:2])
    results = requests(env.node, cluster_ip(svc), 80, 80, interval=0.04)
    late = [r for r in results if r.backend == BACKENDS[2] and r.start > changed + 2.0]
    assert not late, late
    assert all(r.status == "ok" for r in results)
    last_hit = max((r.start for r in results if r.backend == BACKENDS[2]), default=changed)
    print(f"removed endpoint last reached {last_hit - changed:.2f}s after the change")
    rules = env.debug("/debug/rules")
    assert any(f"{env.ns}/shrink" in h["changed"] and not h["full"] for h in rules["history"])


def test_restart_keeps_traffic_flowing_and_rebuilds(env: Env) -> None:
    svc = env.create_service("steady")
    env.put_slice("steady", BACKENDS)
    env.wait_rules(f"{env.ns}/steady:http -> {BACKENDS[2]}")
    client = subprocess.Popen(
        client_command(env.node, cluster_ip(svc), 80, 150, interval=0.03, proto="tcp"),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    pid = proxyproc.proxy_daemon(env.spec, NODE).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # no goodbye: the rules must simply stay
    # While it is down: rules stay, and a change made now must show up after the restart.
    later = env.create_service("while-down")
    env.put_slice("while-down", BACKENDS[:1])
    time.sleep(1.0)
    t0 = time.monotonic()
    proxyproc.start_proxy(
        env.spec, NODE, netns=env.node.netns, node_routes="host-gw", extra_args=["--v=4"]
    )
    restart = time.monotonic() - t0
    out, _ = client.communicate(timeout=60)
    statuses = Counter(row[2] for row in json.loads(out))
    assert statuses == {"ok": 150}, statuses
    first = env.debug("/debug/rules")["history"][-1]
    assert first["full"] and not first["error"]
    results = requests(env.node, cluster_ip(later), 80, 3)
    assert {r.backend for r in results} == {BACKENDS[0]}
    print(f"proxy restart to first full sync: {restart:.2f}s")


def test_net_views(env: Env) -> None:
    port = env.create_service("viewed", type="NodePort")["spec"]["ports"][0]["nodePort"]
    env.put_slice("viewed", BACKENDS[:2])
    env.wait_rules(f"{env.ns}/viewed:http -> {BACKENDS[1]}")
    r = env.net_cli("rules")
    assert r.returncode == 0, r.stderr
    assert f"node {NODE}" in r.stdout and "full" in r.stdout and "DURATION" in r.stdout
    print(r.stdout)
    r = env.net_cli("rules", "--with-text")
    assert r.returncode == 0 and "# restore input of the sync at" in r.stdout
    assert "COMMIT" in r.stdout
    r = env.net_cli("rules", "-o", "json")
    data = json.loads(r.stdout)
    assert data["synced"] and data["history"]
    r = env.net_cli("explain", "svc", f"{env.ns}/viewed")
    assert r.returncode == 0, r.stderr
    assert f"{env.ns}/viewed" in r.stdout
    assert BACKENDS[0] in r.stdout and BACKENDS[1] in r.stdout
    print(r.stdout)
    r = env.net_cli("explain", "svc", f"{env.ns}/missing-{uuid.uuid4().hex[:4]}")
    assert r.returncode == 1 and "not found" in r.stderr
    r = env.net_cli("trace", f"--src={env.client.address}", f"--dst={env.node.address}:{port}")
    assert r.returncode == 0, r.stderr
    assert "DNAT to" in r.stdout and BACKENDS[0] in r.stdout
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
    body = env.slice_body("timed", BACKENDS[:1])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": stamp}
    path = f"/apis/discovery.k8s.io/v1/namespaces/{env.ns}/endpointslices"
    api_json(env.spec, path, method="POST", body=body)
    env.wait_rules(f"{env.ns}/timed:http -> {BACKENDS[0]}")
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
    assert samples["kubeproxy_sync_proxy_rules_iptables_restore_failures_total"] == "0.0"
    code, health = proxyproc.healthz(env.spec, env.node.netns)
    assert code == 200 and set(health) == {"lastUpdated", "currentTime", "nodeEligible"}


def test_kube_proxy_identity_is_upstreams_node_proxier(env: Env) -> None:
    binding = api_json(
        env.spec, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:node-proxier"
    )
    assert binding["roleRef"]["name"] == "system:node-proxier"
    assert {
        "kind": "User",
        "apiGroup": "rbac.authorization.k8s.io",
        "name": "system:kube-proxy",
    } in (binding["subjects"])
    kubeconfig = env.spec.kubeconfig("kube-proxy").read_text()
    assert "kube-proxy.crt" in kubeconfig


def test_proxy_log_has_no_errors(env: Env) -> None:
    log = proxyproc.proxy_daemon(env.spec, NODE).log_file.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert "synced full=True ok=True" in log
