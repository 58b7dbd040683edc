"""pykubelet's own pod network on the session cluster (pods reach each other, the host reaches pods,
hostPort DNAT, cleanup on delete, sandbox failures), and the plugin itself against throwaway netns.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import up as cluster
from cluster.spec import ClusterSpec, free_ports
from net import install, iptables, links, names
from net.cni.protocol import Request
from net.config import parse_netconf
from net.server import PluginServer
from net.service import NetworkService

from .conftest import NODE
from .podutil import (
    Json,
    api_json,
    container,
    create_pod,
    events,
    get_pod,
    pod_body,
    wait_for,
    wait_pod,
)

HTTPD = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"


def _running(pod: Json) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and bool(
        pod.get("status", {}).get("podIP")
    )


def _run_pod(spec: ClusterSpec, ns: str, name: str, body: Json, timeout: float = 60) -> Json:
    create_pod(spec, ns, body)
    try:
        return wait_pod(spec, ns, name, _running, timeout, f"{name} Running with an IP")
    except AssertionError as e:
        msgs = [f"{ev['reason']}: {ev['message']}" for ev in events(spec, ns, name)]
        raise AssertionError(f"{e}; events: {msgs}") from None


def _node(spec: ClusterSpec) -> Json:
    return api_json(spec, f"/api/v1/nodes/{NODE}")


def _http(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode().strip())


def _veth_with_alias(alias: str) -> str | None:
    out = subprocess.run(["ip", "-o", "-d", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if f"alias {alias}" in line:
            return line.split(":")[1].strip().split("@")[0]
    return None


def _delete_pod(spec: ClusterSpec, ns: str, name: str) -> None:
    cluster.api(spec, f"/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0", method="DELETE")
    wait_for(lambda: get_pod(spec, ns, name) is None, 60, f"{name} deleted")


def _allocated_ips(spec: ClusterSpec) -> set[str]:
    root = spec.directory / "nodes" / NODE / "root" / "network" / "ipam"
    ips: set[str] = set()
    for f in root.glob("*/allocations.json"):
        ips |= set(json.loads(f.read_text())["ips"])
    return ips


def test_conflist_written_and_node_ready(cluster_spec: ClusterSpec, ns: str) -> None:
    conflist = json.loads((cluster_spec.cni_conf_dir / install.CONFLIST_NAME).read_text())
    plugin = conflist["plugins"][0]
    assert plugin["type"] == "pykubelet-cni"
    assert plugin["bridge"] == cluster_spec.bridge
    assert plugin["podCIDR"] == _node(cluster_spec)["spec"]["podCIDR"]
    assert plugin["capabilities"] == {"portMappings": True}
    assert not (cluster_spec.cni_conf_dir / cluster.PROVISIONAL_CONFLIST).exists()
    assert cluster.node_ready(cluster_spec, NODE)


def test_pods_reach_each_other_and_the_host_reaches_pods(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    server = _run_pod(cluster_spec, ns, "web", pod_body("web", [container("httpd", HTTPD)]))
    ip = server["status"]["podIP"]
    cidr = ipaddress.ip_network(_node(cluster_spec)["spec"]["podCIDR"])
    assert ipaddress.ip_address(ip) in cidr
    assert wait_for(lambda: _try_http(f"http://{ip}:8080/"), 15, "host -> pod") == "hello-web"
    # busybox-static's wget segfaults here; nc speaks the HTTP request by hand.
    fetch = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080 | grep -q hello-web"
    client = pod_body("client", [container("wget", fetch)], restart="Never")
    created = create_pod(cluster_spec, ns, client)
    assert created["metadata"]["name"] == "client"
    done = wait_pod(
        cluster_spec,
        ns,
        "client",
        lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"),
        60,
        "client finished",
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    client_ip = done["status"]["podIP"]
    assert client_ip != ip and ipaddress.ip_address(client_ip) in cidr
    veth = _veth_with_alias(f"{ns}/web")
    assert veth is not None and veth.startswith(names.VETH_PREFIX) and len(veth) <= 15
    link = links.host_link(veth)
    assert link is not None and link["master"] == cluster_spec.bridge


def _try_http(url: str) -> str | None:
    try:
        return _http(url, timeout=2)
    except OSError:
        return None


def _node_ip(spec: ClusterSpec) -> str:
    addrs = _node(spec)["status"]["addresses"]
    return str(next(a["address"] for a in addrs if a["type"] == "InternalIP"))


def test_hostport_dnat_and_cleanup_on_delete(cluster_spec: ClusterSpec, ns: str) -> None:
    (host_port,) = free_ports(1)
    c = container("httpd", HTTPD)
    c["ports"] = [{"containerPort": 8080, "hostPort": host_port, "protocol": "TCP"}]
    pod = _run_pod(cluster_spec, ns, "hp", pod_body("hp", [c]))
    ip = pod["status"]["podIP"]
    rules = iptables.hostport_rules(cluster_spec.bridge)
    assert any(f"{ip}:8080" in r for rule in rules for r in rule), rules
    node_ip = _node_ip(cluster_spec)
    url = f"http://{node_ip}:{host_port}/"
    assert wait_for(lambda: _try_http(url), 15, f"hostPort via {node_ip}") == "hello-hp"
    veth = _veth_with_alias(f"{ns}/hp")
    assert veth is not None and ip in _allocated_ips(cluster_spec)
    _delete_pod(cluster_spec, ns, "hp")
    wait_for(lambda: links.host_link(veth) is None, 30, "veth removed")
    wait_for(lambda: ip not in _allocated_ips(cluster_spec), 30, "IP released")
    rules = iptables.hostport_rules(cluster_spec.bridge)
    assert not any(f"{ip}:8080" in r for rule in rules for r in rule), rules


def test_bad_network_config_fails_the_sandbox_with_an_event(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    conf = cluster_spec.cni_conf_dir / install.CONFLIST_NAME
    good = conf.read_text()
    bad = json.loads(good)
    bad["plugins"][0]["podCIDR"] = "not-a-cidr"
    before_links = _host_veths()
    before_ips = _allocated_ips(cluster_spec)
    try:
        conf.write_text(json.dumps(bad))
        time.sleep(2)  # containerd reloads its CNI config on a file event
        create_pod(cluster_spec, ns, pod_body("broken", [container("c", "sleep 3600")]))

        def failed() -> Json | None:
            evs = events(cluster_spec, ns, "broken")
            return next((e for e in evs if e["reason"] == "FailedCreatePodSandBox"), None)

        event = wait_for(failed, 60, "FailedCreatePodSandBox event")
        assert "podCIDR" in event["message"] or "invalid" in event["message"], event
        # nothing new (earlier tests' pods may still be going away meanwhile)
        assert _host_veths() <= before_links
        assert _allocated_ips(cluster_spec) <= before_ips
    finally:
        conf.write_text(good)
        _delete_pod(cluster_spec, ns, "broken")


def _host_veths() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {
        ln.split(":")[1].strip().split("@")[0]
        for ln in out.splitlines()
        if ln.split(":")[1].strip().startswith(names.VETH_PREFIX)
    }


# ---- the plugin alone, against throwaway netns (no cluster) ---------------------------------
@contextlib.contextmanager
def _netns(count: int) -> Iterator[list[str]]:
    tag = uuid.uuid4().hex[:6]
    made = [f"pkn-{tag}-{i}" for i in range(count)]
    try:
        for name in made:
            subprocess.run(["ip", "netns", "add", name], check=True)
        yield [f"/run/netns/{n}" for n in made]
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


@contextlib.contextmanager
def _agent(tmp: Path) -> Iterator[tuple[PluginServer, NetworkService]]:
    """A plugin server on its own event loop thread (as in the agent)."""
    service = NetworkService(tmp / "data")
    server = PluginServer(tmp / "cni.sock", service.handle)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server, service
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def bridge() -> Iterator[str]:
    name = f"pkb{os.getpid() % 100000}"
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        iptables.remove_network(name)


def _config(bridge: str, sock: Path, cidr: str = "10.253.0.0/24") -> Json:
    return {
        "cniVersion": "1.0.0",
        "name": "pykubelet",
        "type": "pykubelet-cni",
        "bridge": bridge,
        "podCIDR": cidr,
        "clusterCIDR": "10.253.0.0/16",
        "socket": str(sock),
    }


def _exec(plugin: Path, cmd: str, cid: str, netns: str, config: Json) -> tuple[int, Any, float]:
    env = {
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + cid,
        "CNI_PATH": str(plugin.parent),
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    t0 = time.perf_counter()
    r = subprocess.run(
        [str(plugin)], input=json.dumps(config).encode(), env=env, capture_output=True
    )
    elapsed = time.perf_counter() - t0
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, elapsed


def test_plugin_add_twice_del_twice_check_and_agent_down(tmp_path: Path, bridge: str) -> None:
    plugin = install.install_plugin(tmp_path / "bin")
    config = _config(bridge, tmp_path / "cni.sock")
    with _netns(1) as (netns,), _agent(tmp_path):
        code, first, _ = _exec(plugin, "ADD", "cid-a", netns, config)
        assert code == 0, first
        assert first["ips"][0]["address"] == "10.253.0.2/24"
        assert first["ips"][0]["gateway"] == "10.253.0.1"
        assert first["interfaces"][2] == {**first["interfaces"][2], "name": "eth0"}
        code, again, _ = _exec(plugin, "ADD", "cid-a", netns, config)
        assert code == 0 and again == first
        assert _exec(plugin, "CHECK", "cid-a", netns, config)[0] == 0
        host = names.host_veth_name("cid-a")
        assert (links.host_link(host) or {}).get("alias") == "bench/cid-a"
        links.delete_link(host)
        code, err, _ = _exec(plugin, "CHECK", "cid-a", netns, config)
        assert code == 1 and err["code"] == 104, err
        for _ in range(2):
            code, out, _ = _exec(plugin, "DEL", "cid-a", netns, config)
            assert code == 0 and out is None
        assert _exec(plugin, "DEL", "never-added", netns, config)[0] == 0
    code, err, _ = _exec(plugin, "ADD", "cid-b", "/nonexistent", config)
    assert code == 1 and err["code"] == 11, err


@pytest.mark.parametrize(
    "stdin",
    [b"", b"{", b"[]", b'{"cniVersion": "0.2.0", "type": "pykubelet-cni"}', b"\xff\xfe"],
)
def test_plugin_rejects_bad_config_with_cni_error(tmp_path: Path, stdin: bytes) -> None:
    plugin = install.install_plugin(tmp_path / "bin")
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "x", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"}
    r = subprocess.run([str(plugin)], input=stdin, env=env, capture_output=True)
    assert r.returncode == 1
    err = json.loads(r.stdout)
    assert err["code"] in (1, 6, 7) and err["msg"], err


def test_failed_add_leaves_nothing_half_made(
    tmp_path: Path, bridge: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> int:
        raise iptables.IptablesError("injected failure after veth, IP and pod side exist")

    config = {
        **_config(bridge, tmp_path / "cni.sock"),
        "runtimeConfig": {"portMappings": [{"hostPort": 19999, "containerPort": 80}]},
    }
    with _netns(1) as (netns,), _agent(tmp_path) as (server, service):
        monkeypatch.setattr(iptables, "add_hostports", boom)
        reply = asyncio.run(_ask(server, Request("ADD", "cid-x", netns, "eth0", {}, "", config)))
        assert reply["ok"] is False and reply["error"]["code"] == 102, reply
        assert links.host_link(names.host_veth_name("cid-x")) is None
        assert service.store(parse_netconf(config)).all() == []
        assert iptables.hostport_rules(bridge, "cid-x") == []


async def _ask(server: PluginServer, req: Request) -> Json:
    from net.cni import protocol

    return await server.answer(protocol.encode_message(req.to_json()))


def _bench(run: Callable[[str, str, str], tuple[int, Any, float]], n: int) -> dict[str, float]:
    adds, dels = [], []
    with _netns(n) as paths:
        for i, netns in enumerate(paths):
            code, out, took = run("ADD", f"bench-{i}", netns)
            assert code == 0, out
            adds.append(took)
        for i, netns in enumerate(paths):
            code, out, took = run("DEL", f"bench-{i}", netns)
            assert code == 0, out
            dels.append(took)
    return {"add_ms": statistics.median(adds) * 1000, "del_ms": statistics.median(dels) * 1000}


def _debian_bridge(tmp: Path, name: str, ip_masq: bool) -> Callable[[str, str, str], Any]:
    config = {
        "cniVersion": "1.0.0",
        "name": f"bench-{name}",
        "type": "bridge",
        "bridge": name,
        "isGateway": True,
        "ipMasq": ip_masq,
        "ipam": {
            "type": "host-local",
            "subnet": "10.254.0.0/24",
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(tmp / "host-local"),
        },
    }
    plugin = Path("/usr/lib/cni/bridge")
    return lambda cmd, cid, netns: _exec(plugin, cmd, cid, netns, config)


def test_add_del_latency_against_debian_bridge(tmp_path: Path, bridge: str) -> None:
    """Median of 20 ADDs and 20 DELs, ours vs Debian's bridge + host-local (same machine)."""
    plugin = install.install_plugin(tmp_path / "bin")
    config = _config(bridge, tmp_path / "cni.sock")
    results: dict[str, dict[str, float]] = {}
    with _agent(tmp_path):
        _exec(plugin, "ADD", "warm", "/nonexistent", config)  # bridge, iptables set-up
        results["pykubelet-cni"] = _bench(lambda c, i, n: _exec(plugin, c, i, n, config), 20)
    for masq in (False, True):
        name = f"pkd{os.getpid() % 10000}{int(masq)}"
        try:
            run = _debian_bridge(tmp_path / name, name, masq)
            results[f"debian bridge ipMasq={masq}"] = _bench(run, 20)
        finally:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    print("\nCNI latency (median of 20):", json.dumps(results, indent=1))
    (tmp_path.parent / "cni-latency.json").write_text(json.dumps(results, indent=1))
    ours = results["pykubelet-cni"]
    assert ours["add_ms"] < 1000 and ours["del_ms"] < 1000, results


def test_sockets_cleaned(tmp_path: Path) -> None:
    """The plugin socket is removed when the server closes."""
    with _agent(tmp_path) as (server, _):
        assert server.path.exists()
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(server.path))
        s.close()
    assert not server.path.exists()
