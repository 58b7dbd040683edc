"""Pod networking across simulated nodes (`up --nodes`): pod to pod over TCP and UDP, hostNetwork
to pod, hostPort from another node, churn of 50 pods, and restarts keeping IPs unique."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import nodes, process
from cluster import up as cluster
from cluster.nodes import SimNode
from cluster.spec import ClusterSpec

from .multinode import (
    container_id,
    crictl,
    delete_all_pods,
    in_node,
    multinode_cluster,
    pod,
    running,
    sandbox_netns,
    sim,
)
from .podutil import create_pod, new_namespace, wait_for

A, B, C = "mn-a", "mn-b", "mn-c"
SERVER = "nc -ll -p 8080 -e echo pong-$(hostname)"


@pytest.fixture(scope="module")
def mn(root_required: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    with multinode_cluster(Path(tmp_path_factory.mktemp("multinode")), (A, B, C)) as spec:
        yield spec


@pytest.fixture(scope="module")
def ns(mn: ClusterSpec) -> Iterator[str]:
    namespace = new_namespace(mn)
    yield namespace
    delete_all_pods(mn, namespace)


def test_pod_reaches_pod_on_other_node_over_tcp(mn: ClusterSpec, ns: str) -> None:
    create_pod(mn, ns, pod("srv-b", B, SERVER))
    create_pod(mn, ns, pod("cli-a", A, "sleep 3600"))
    srv, cli = running(mn, ns, "srv-b"), running(mn, ns, "cli-a")
    assert srv["status"]["podIP"].rsplit(".", 1)[0] != cli["status"]["podIP"].rsplit(".", 1)[0]
    out = crictl(
        mn, sim(mn, A), "exec", container_id(cli), "nc", "-w", "3", srv["status"]["podIP"], "8080"
    )
    assert out.strip() == "pong-srv-b"


UDP_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9090))
s.settimeout(20)
print("ready", flush=True)
data, peer = s.recvfrom(100)
s.sendto(b"pong:" + data, peer)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"ping", (sys.argv[1], 9090))
print(s.recvfrom(100)[0].decode())
"""


def test_pod_reaches_pod_on_other_node_over_udp(mn: ClusterSpec, ns: str) -> None:
    """The busybox image has no UDP tool (its nc lacks -u), so both ends are Python sockets
    run inside the pods' own network namespaces (found through each node's CRI)."""
    create_pod(mn, ns, pod("udp-b", B, "sleep 3600"))
    create_pod(mn, ns, pod("udp-a", A, "sleep 3600"))
    srv, cli = running(mn, ns, "udp-b"), running(mn, ns, "udp-a")
    srv_ns, cli_ns = sandbox_netns(mn, sim(mn, B), srv), sandbox_netns(mn, sim(mn, A), cli)
    server = subprocess.Popen(
        ["nsenter", f"--net={srv_ns}", sys.executable, "-c", UDP_SERVER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        out = subprocess.run(
            [
                "nsenter",
                f"--net={cli_ns}",
                sys.executable,
                "-c",
                UDP_CLIENT,
                srv["status"]["podIP"],
            ],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
        assert out.strip() == "pong:ping"
    finally:
        server.kill()
        server.wait()


def test_host_network_pod_reaches_pod_ip(mn: ClusterSpec, ns: str) -> None:
    create_pod(mn, ns, pod("srv-b2", B, SERVER))
    create_pod(mn, ns, pod("hostnet-a", A, "sleep 3600", host_network=True))
    srv, hn = running(mn, ns, "srv-b2"), running(mn, ns, "hostnet-a")
    assert hn["status"]["podIP"] == sim(mn, A).address
    out = crictl(
        mn, sim(mn, A), "exec", container_id(hn), "nc", "-w", "3", srv["status"]["podIP"], "8080"
    )
    assert out.strip() == "pong-srv-b2"


def test_host_port_reaches_pod_from_another_node(mn: ClusterSpec, ns: str) -> None:
    port = {"containerPort": 8080, "hostPort": 18080, "protocol": "TCP"}
    create_pod(mn, ns, pod("hp-b", B, SERVER, ports=[port]))
    running(mn, ns, "hp-b")
    out = in_node(sim(mn, C), "busybox", "nc", "-w", "3", sim(mn, B).address, "18080")
    assert out.strip() == "pong-hp-b"


def _ipam(node: SimNode) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in (node.root_dir / "network" / "ipam").glob("*/allocations.json"):
        data = json.loads(f.read_text() or "{}")
        out.extend({"ip": ip, **rec} for ip, rec in data.get("ips", {}).items())
    return out


def _veths(node: SimNode) -> list[str]:
    links = json.loads(in_node(node, "ip", "-j", "link", "show", "type", "veth") or "[]")
    return [str(link["ifname"]) for link in links if str(link["ifname"]).startswith("pk")]


def _dnats(node: SimNode) -> list[str]:
    rules = in_node(node, "iptables-save", "-t", "nat").splitlines()
    return [r for r in rules if "DNAT" in r and "pykubelet" in r]


def test_fifty_pods_created_then_deleted_leave_nothing(mn: ClusterSpec) -> None:
    node = sim(mn, C)
    churn = new_namespace(mn)
    try:
        t0 = time.monotonic()
        for i in range(50):
            port = {"containerPort": 8080, "hostPort": 20000 + i, "protocol": "TCP"}
            create_pod(mn, churn, pod(f"churn-{i}", C, "sleep 3600", ports=[port]))
        pods = [running(mn, churn, f"churn-{i}", timeout=300) for i in range(50)]
        started = time.monotonic() - t0
        ips = {p["status"]["podIP"] for p in pods}
        assert len(ips) == 50
        assert len(_ipam(node)) == 50 and len(_veths(node)) == 50 and len(_dnats(node)) == 50
        t1 = time.monotonic()
        delete_all_pods(mn, churn, timeout=300)
        wait_for(
            lambda: not _veths(node) and not _ipam(node) and not _dnats(node),
            120,
            f"veths/IPs/DNATs of node {C} gone",
            1.0,
        )
        print(f"50 pods Running in {started:.1f}s, all gone in {time.monotonic() - t1:.1f}s")
    finally:
        delete_all_pods(mn, churn, timeout=300)


def test_restarting_agent_and_containerd_keeps_ips_unique(mn: ClusterSpec, ns: str) -> None:
    node = sim(mn, A)
    before = {n: running(mn, ns, n)["status"]["podIP"] for n in ("cli-a", "udp-a")}
    process.stop(cluster.agent_daemon(mn, node.name))
    process.stop(nodes.daemon(mn, "containerd", node))
    cluster.start_sim_node(mn, node)
    for i in range(3):
        create_pod(mn, ns, pod(f"after-{i}", A, "sleep 3600"))
    after = {f"after-{i}": running(mn, ns, f"after-{i}")["status"]["podIP"] for i in range(3)}
    now = {n: running(mn, ns, n)["status"]["podIP"] for n in before}
    assert now == before
    all_ips = list(before.values()) + list(after.values())
    assert len(set(all_ips)) == len(all_ips), all_ips
    stored = [a["ip"] for a in _ipam(node)]
    assert len(stored) == len(set(stored)) and set(all_ips) <= set(stored)


def test_net_pod_view_matches_ip(mn: ClusterSpec, ns: str) -> None:
    node = sim(mn, B)
    port = {"containerPort": 8080, "hostPort": 18081, "protocol": "TCP"}
    create_pod(mn, ns, pod("view-b", B, SERVER, ports=[port]))
    p = running(mn, ns, "view-b")
    cmd = [
        sys.executable,
        "-m",
        "pykubelet.cli",
        "net",
        "pod",
        f"{ns}/view-b",
        f"--runtime-endpoint=unix://{node.containerd_socket}",
    ]
    data = json.loads(in_node(node, *cmd, "-o", "json"))
    text = in_node(node, *cmd)
    pod_ns = sandbox_netns(mn, node, p)
    assert data["pod"]["ip"] == p["status"]["podIP"] and data["podSide"]["netns"] == pod_ns

    (eth0,) = json.loads(
        in_node(node, "nsenter", f"--net={pod_ns}", "ip", "-j", "addr", "show", "eth0")
    )
    mine = next(x for x in data["podSide"]["interfaces"] if x["name"] == "eth0")
    assert mine["ifindex"] == eth0["ifindex"] and mine["mac"] == eth0["address"]
    assert mine["mtu"] == eth0["mtu"] and mine["peerIfindex"] == eth0["link_index"]
    assert mine["addresses"] == [
        f"{a['local']}/{a['prefixlen']}" for a in eth0["addr_info"] if a["family"] == "inet"
    ]
    pod_routes = json.loads(in_node(node, "nsenter", f"--net={pod_ns}", "ip", "-j", "route"))
    assert sorted(r["dst"] for r in data["podSide"]["routes"]) == sorted(
        r["dst"] for r in pod_routes
    )

    veth_name = data["hostSide"]["veth"]["name"]
    (veth,) = json.loads(in_node(node, "ip", "-j", "-d", "link", "show", "dev", veth_name))
    mine = data["hostSide"]["veth"]
    assert mine["ifindex"] == eth0["link_index"] == veth["ifindex"]
    assert mine["mac"] == veth["address"] and mine["master"] == veth["master"]
    assert mine["alias"] == veth.get("ifalias") == f"{ns}/view-b"
    bridge = data["hostSide"]["bridge"]
    (br,) = json.loads(in_node(node, "ip", "-j", "addr", "show", "dev", veth["master"]))
    assert bridge["addresses"] == [
        f"{a['local']}/{a['prefixlen']}" for a in br["addr_info"] if a["family"] == "inet"
    ]
    assert data["hostPorts"] == [
        {
            "chain": data["hostPorts"][0]["chain"],
            "protocol": "tcp",
            "hostIP": "",
            "hostPort": 18081,
            "to": f"{p['status']['podIP']}:8080",
        }
    ]
    for needle in ("eth0", mine["name"], f"bridge {veth['master']}", "18081", "ROUTES"):
        assert needle in text
