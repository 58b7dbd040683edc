"""Services end to end on simulated nodes: real server pods behind Services with selectors (the
controller-manager makes the EndpointSlices), each node's `pykubelet proxy` (iptables mode, then
nftables mode), and the kernel's answers compared with `net trace` and `net explain`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cluster import nodes, proxyproc
from cluster import up as cluster
from cluster.spec import ClusterSpec

from .multinode import (
    delete_all_pods,
    in_node,
    multinode_cluster,
    pod,
    running,
    sandbox_netns,
    sim,
)
from .podutil import api_json, create_pod, get_pod, new_namespace, wait_for

Json = dict[str, Any]
A, B, C = "sv-a", "sv-b", "sv-c"
PORT = 8080
SERVERS = {"srv-a": A, "srv-b": B, "srv-c": C}
SHRINKING = {"shr-b": B, "shr-c": C}

# busybox httpd answers GET /cgi-bin/id with "<pod name> <peer address>" (REMOTE_ADDR is set by
# httpd for CGI). The shell ignores SIGTERM, and httpd inherits that, so a deleted pod keeps
# answering for its grace period: a terminating endpoint that is still reached shows up.
SERVER = r"""
mkdir -p /www/cgi-bin
printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$(hostname) $REMOTE_ADDR"\n' \
  > /www/cgi-bin/id
chmod +x /www/cgi-bin/id
trap '' TERM
exec httpd -f -p 0.0.0.0:8080 -h /www
"""

CLIENT = r"""
import json, socket, sys, time
ip, port, count, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = []
for _ in range(count):
    t = time.time()
    try:
        with socket.create_connection((ip, port), timeout=3) as s:
            s.sendall(b"GET /cgi-bin/id HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        lines = data.decode(errors="replace").strip().splitlines()
        out.append([t, time.time() - t, "ok", lines[-1] if lines else ""])
    except ConnectionRefusedError:
        out.append([t, time.time() - t, "refused", ""])
    except OSError as e:
        out.append([t, time.time() - t, type(e).__name__, str(e)])
    if interval:
        time.sleep(interval)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Result:
    start: float
    seconds: float
    status: str
    pod: str
    """The pod that answered ("" unless ok)."""
    peer: str
    """The client address the pod saw."""


def client_command(netns: str | None, ip: str, port: int, count: int, interval: float) -> list[str]:
    cmd = [sys.executable, "-c", CLIENT, ip, str(port), str(count), str(interval)]
    return ["nsenter", f"--net={netns}", "--", *cmd] if netns else cmd


def parse(stdout: str) -> list[Result]:
    out = []
    for start, seconds, status, body in json.loads(stdout):
        name, _, peer = body.partition(" ") if status == "ok" else ("", "", "")
        out.append(Result(start, seconds, status, name, peer))
    return out


def send(netns: str | None, ip: str, port: int, count: int, interval: float = 0.0) -> list[Result]:
    """`count` HTTP requests, one connection each, from the netns at path `netns` (None: the
    root netns)."""
    r = subprocess.run(
        client_command(netns, ip, port, count, interval),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    return parse(r.stdout)


def server_pod(name: str, node: str, grace: int = 0) -> Json:
    p = pod(name, node, SERVER)
    p["metadata"]["labels"] = {"app": "srv" if name in SERVERS else "shrink", "pod": name}
    p["spec"]["terminationGracePeriodSeconds"] = grace
    p["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": PORT},
        "periodSeconds": 1,
    }
    return p


def ready(spec: ClusterSpec, ns: str, name: str) -> Json:
    def check() -> Json | None:
        p = get_pod(spec, ns, name)
        conds = (p or {}).get("status", {}).get("conditions", [])
        ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
        return p if ok else None

    result: Json = wait_for(check, 90, f"pod {ns}/{name} Ready", 0.2)
    return result


@dataclass
class Env:
    spec: ClusterSpec
    ns: str
    ips: dict[str, str]
    """Pod name -> pod IP."""
    client_netns: str
    client_ip: str

    def node(self, name: str) -> nodes.SimNode:
        return sim(self.spec, name)

    def pod_of(self, ip: str) -> str:
        return next(n for n, i in self.ips.items() if i == ip)

    def create_service(self, name: str, selector: dict[str, str], **spec: Any) -> Json:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": PORT, "protocol": "TCP"}],
                **spec,
            },
        }
        path = f"/api/v1/namespaces/{self.ns}/services"
        svc: Json = api_json(self.spec, path, method="POST", body=body)
        return svc

    def net(self, node: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`pykubelet net ARGS` inside the node's netns, against its proxy."""
        address = f"127.0.0.1:{self.spec.ports.proxy_metrics}"
        cmd = [sys.executable, "-m", "pykubelet.cli", "net", *args, f"--metrics-address={address}"]
        return subprocess.run(
            ["nsenter", f"--net={self.node(node).netns_path}", "--", *cmd],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def explain(self, node: str, svc: str) -> Json:
        r = self.net(node, "explain", "svc", f"{self.ns}/{svc}", "-o", "json")
        assert r.returncode == 0, r.stderr
        data: Json = json.loads(r.stdout)
        return data

    def trace(self, node: str, src: str, dst: str, port: int) -> Json:
        r = self.net(node, "trace", f"--src={src}", f"--dst={dst}:{port}", "-o", "json")
        assert r.returncode == 0, r.stderr
        data: Json = json.loads(r.stdout)
        return data

    def wait_synced(self, node: str, svc: str, pods: list[str], timeout: float = 30) -> None:
        """Until the node's proxy balances `svc` over exactly these pods, in the kernel too."""
        want = {f"{self.ips[p]}:{PORT}" for p in pods}

        def check() -> bool:
            r = self.net(node, "explain", "svc", f"{self.ns}/{svc}", "-o", "json")
            if r.returncode != 0:
                return False
            eps = [e for port in json.loads(r.stdout)["ports"] for e in port["endpoints"]]
            used = {e["address"]: e["chain"] for e in eps if e["used_by"]}
            if set(used) != want:
                return False
            if self.spec.proxy_mode == "nftables":
                ruleset = in_node(self.node(node), "nft", "list", "ruleset")
                return all(f"chain {chain} {{" in ruleset for chain in used.values())
            saved = in_node(self.node(node), "iptables-save", "-t", "nat")
            return all(f":{chain} " in saved for chain in used.values())

        wait_for(check, timeout, f"{node}: {svc} balanced over {sorted(pods)}", 0.2)


def dnat_targets(trace: Json) -> set[str]:
    return {k.removeprefix("dnat ").split(":")[0] for k in trace["outcomes"]}


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def spec(
    root_required: None, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ClusterSpec]:
    """The same checks with each proxy mode (one cluster per mode, one after the other)."""
    mode = request.param
    directory = Path(tmp_path_factory.mktemp(f"svc-{mode}"))
    with multinode_cluster(directory, (A, B, C), proxy_mode=mode, tag="pks") as s:
        yield s


@pytest.fixture(scope="module")
def env(spec: ClusterSpec) -> Iterator[Env]:
    for sim_node in nodes.sim_nodes(spec):
        # Simulated nodes have an on-link default route, as real nodes have a default route.
        assert in_node(sim_node, "ip", "-4", "route", "show", "default").strip()
    ns = new_namespace(spec)
    try:
        for name, node in SERVERS.items():
            create_pod(spec, ns, server_pod(name, node))
        for name, node in SHRINKING.items():
            create_pod(spec, ns, server_pod(name, node, grace=30))
        create_pod(spec, ns, pod("client", A, "sleep 3600"))
        ips = {n: ready(spec, ns, n)["status"]["podIP"] for n in (*SERVERS, *SHRINKING)}
        cli = running(spec, ns, "client")
        netns = sandbox_netns(spec, sim(spec, A), cli)
        yield Env(spec, ns, ips, netns, cli["status"]["podIP"])
    finally:
        delete_all_pods(spec, ns)


def test_cluster_ip_spreads_over_pods_on_three_nodes(env: Env) -> None:
    svc = env.create_service("spread", {"app": "srv"})
    env.wait_synced(A, "spread", list(SERVERS))
    vip = svc["spec"]["clusterIP"]
    results = send(env.client_netns, vip, 80, 300)
    assert Counter(r.status for r in results) == {"ok": 300}
    share = {name: n / 300 for name, n in Counter(r.pod for r in results).items()}
    assert set(share) == set(SERVERS), share
    assert all(0.20 <= s <= 0.46 for s in share.values()), share
    # Pod to Service inside the cluster: no masquerade, the pod sees the client pod's address.
    assert {r.peer for r in results} == {env.client_ip}
    trace = env.trace(A, env.client_ip, vip, 80)
    assert {env.pod_of(ip) for ip in dnat_targets(trace)} == set(share)
    assert all(abs(p - 1 / 3) < 0.01 for p in trace["outcomes"].values()), trace["outcomes"]
    assert not any(b["masquerade"] for b in trace["branches"]), trace["branches"]
    print(f"shares over 300 requests: {share}")


def test_node_port_answers_from_another_node_and_the_root_netns(env: Env) -> None:
    svc = env.create_service("np", {"pod": "srv-b"}, type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_synced(A, "np", ["srv-b"])
    env.wait_synced(C, "np", ["srv-b"])
    a, c = env.node(A), env.node(C)
    from_c = send(c.netns_path, a.address, node_port, 5)
    assert {(r.status, r.pod) for r in from_c} == {("ok", "srv-b")}, from_c
    # Cluster policy: masqueraded to the node the NodePort was reached on (A), not C's address.
    assert {r.peer for r in from_c} != {c.address}
    trace = env.trace(A, c.address, a.address, node_port)
    assert dnat_targets(trace) == {env.ips["srv-b"]}
    assert all(b["masquerade"] for b in trace["branches"]), trace["branches"]
    from_root = send(None, c.address, node_port, 5)
    assert {(r.status, r.pod) for r in from_root} == {("ok", "srv-b")}, from_root


def test_external_ip(env: Env) -> None:
    seg = nodes.segment(env.spec)
    external = str(seg.network_address + 200)  # not a node's, nor the root netns's (.254)
    assert external not in {n.address for n in nodes.sim_nodes(env.spec)}
    env.create_service("ext", {"pod": "srv-c"}, externalIPs=[external])
    env.wait_synced(A, "ext", ["srv-c"])
    env.wait_synced(B, "ext", ["srv-c"])  # B's own rules take B's packets to the external IP
    from_pod = send(env.client_netns, external, 80, 3)
    assert {(r.status, r.pod) for r in from_pod} == {("ok", "srv-c")}, from_pod
    # From another host: the address is routed to node A (as a router would for an external IP).
    a, b = env.node(A), env.node(B)
    in_node(b, "ip", "route", "replace", f"{external}/32", "via", a.address)
    try:
        from_b = send(b.netns_path, external, 80, 3)
    finally:
        in_node(b, "ip", "route", "del", f"{external}/32")
    assert {(r.status, r.pod) for r in from_b} == {("ok", "srv-c")}, from_b
    assert dnat_targets(env.trace(A, b.address, external, 80)) == {env.ips["srv-c"]}


def test_client_ip_affinity_sticks_to_one_pod(env: Env) -> None:
    svc = env.create_service("sticky", {"app": "srv"}, sessionAffinity="ClientIP")
    env.wait_synced(A, "sticky", list(SERVERS))
    results = send(env.client_netns, svc["spec"]["clusterIP"], 80, 30)
    assert {r.status for r in results} == {"ok"}
    assert len({r.pod for r in results}) == 1, Counter(r.pod for r in results)
    explained = env.explain(A, "sticky")
    assert explained["affinity"].startswith("ClientIP"), explained["affinity"]
    trace = env.trace(A, env.client_ip, svc["spec"]["clusterIP"], 80)
    assert env.ips[results[0].pod] in dnat_targets(trace)
    # The kernel's flows for it, as `net explain` lists them, all went to that one pod.
    flows = {(c["src"], c["reply_src"]) for c in explained["conntrack"]}
    assert flows == {(env.client_ip, env.ips[results[0].pod])}, explained["conntrack"]


def test_service_without_endpoints_refuses_at_once(env: Env) -> None:
    svc = env.create_service("nobody", {"pod": "nobody"})
    vip = svc["spec"]["clusterIP"]

    def rejected() -> bool:
        return set(env.trace(A, env.client_ip, vip, 80)["outcomes"]) == {"reject"}

    wait_for(rejected, 30, "nobody rejected by node A's rules", 0.2)
    results = send(env.client_netns, vip, 80, 5)
    assert {r.status for r in results} == {"refused"}, results
    assert max(r.seconds for r in results) < 0.5, results


def test_external_traffic_policy_local_keeps_the_client_address(env: Env) -> None:
    svc = env.create_service(
        "local", {"app": "srv"}, type="NodePort", externalTrafficPolicy="Local"
    )
    node_port = svc["spec"]["ports"][0]["nodePort"]
    env.wait_synced(B, "local", list(SERVERS))
    b, c = env.node(B), env.node(C)
    results = send(c.netns_path, b.address, node_port, 20)
    assert {(r.status, r.pod, r.peer) for r in results} == {("ok", "srv-b", c.address)}, results
    trace = env.trace(B, c.address, b.address, node_port)
    assert dnat_targets(trace) == {env.ips["srv-b"]}
    assert not any(br["masquerade"] for br in trace["branches"]), trace["branches"]
    explained = env.explain(B, "local")
    assert explained["external_policy"] == "Local"
    flags = {e["address"].split(":")[0]: e["local"] for e in explained["ports"][0]["endpoints"]}
    assert flags == {ip: name == "srv-b" for name, ip in env.ips.items() if name in SERVERS}


def test_proxy_killed_and_restarted_refuses_nothing(env: Env) -> None:
    svc = env.create_service("steady", {"app": "srv"})
    env.wait_synced(A, "steady", list(SERVERS))
    a = env.node(A)
    client = subprocess.Popen(
        client_command(env.client_netns, svc["spec"]["clusterIP"], 80, 150, 0.03),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        pid = proxyproc.proxy_daemon(env.spec, A).pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # no goodbye: the rules must simply stay
        wait_for(lambda: proxyproc.proxy_daemon(env.spec, A).pid() is None, 10, "proxy gone")
        later = env.create_service("while-down", {"pod": "srv-a"})
        time.sleep(1.0)
        t0 = time.monotonic()
        proxyproc.start_proxy(
            env.spec, A, netns=a.netns, node_routes=env.spec.route_mode, mode=env.spec.proxy_mode
        )
        restart = time.monotonic() - t0
        out, _ = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    results = parse(out)
    assert Counter(r.status for r in results) == {"ok": 150}
    rules = env.net(A, "rules", "-o", "json")
    assert rules.returncode == 0, rules.stderr
    first = json.loads(rules.stdout)["history"][-1]  # newest first: the first sync is last
    assert first["full"] and not first["error"], first
    env.wait_synced(A, "while-down", ["srv-a"])
    after = send(env.client_netns, later["spec"]["clusterIP"], 80, 3)
    assert {(r.status, r.pod) for r in after} == {("ok", "srv-a")}
    trace = env.trace(A, env.client_ip, later["spec"]["clusterIP"], 80)
    assert dnat_targets(trace) == {env.ips["srv-a"]}
    print(f"proxy restart to first sync: {restart:.2f}s")


def test_deleted_pod_gets_no_new_connections_within_2s(env: Env) -> None:
    svc = env.create_service("shrink", {"app": "shrink"})
    env.wait_synced(A, "shrink", list(SHRINKING))
    client = subprocess.Popen(
        client_command(env.client_netns, svc["spec"]["clusterIP"], 80, 120, 0.04),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # ~20 requests first, half of them to shr-c
        deleted = time.time()
        cluster.api(env.spec, f"/api/v1/namespaces/{env.ns}/pods/shr-c", method="DELETE")
        out, _ = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    results = parse(out)
    # shr-c ignores SIGTERM and keeps serving while it terminates: reaching it is visible.
    assert {r.status for r in results} == {"ok"}, Counter(r.status for r in results)
    assert any(r.pod == "shr-c" and r.start < deleted for r in results)
    late = [r for r in results if r.pod == "shr-c" and r.start > deleted + 2.0]
    assert not late, late
    last = max(r.start for r in results if r.pod == "shr-c")
    print(f"deleted pod last reached {last - deleted:.2f}s after its deletion")
    # `net explain`: the terminating endpoint is listed, not ready, still serving, unused.
    explained = env.explain(A, "shrink")
    eps = {e["address"].split(":")[0]: e for e in explained["ports"][0]["endpoints"]}
    gone, kept = eps[env.ips["shr-c"]], eps[env.ips["shr-b"]]
    assert (gone["ready"], gone["serving"], gone["terminating"]) == (False, True, True), gone
    assert not gone["used_by"] and kept["used_by"], eps
    assert (kept["ready"], kept["terminating"], kept["local"]) == (True, False, False), kept
    text = env.net(A, "explain", "svc", f"{env.ns}/shrink")
    assert text.returncode == 0, text.stderr
    row = next(ln.split() for ln in text.stdout.splitlines() if env.ips["shr-c"] in ln)
    assert row[1:5] == ["no", "yes", "yes", "no"], text.stdout
    print(text.stdout.split("conntrack entries")[0])
