"""What `pykubelet up` adds once its nodes are Ready, so Services and DNS work on defaults: the
Service proxy of a node that is this host (root netns), the apiserver reachable from pods (the
`kubernetes` Service's endpoint) and CoreDNS (cluster/dns.py's manifests); `remove` undoes it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster import dns, images, nodes, nsforward, process, proxyproc
from cluster.http import request
from cluster.spec import DEFAULT_CACHE, ClusterSpec, apiserver_command

Progress = Callable[[str], None]
Json = dict[str, Any]
FORWARDER = "apiserver-for-pods"
MANAGED_BY = "pykubelet-up"
"""endpointslice.kubernetes.io/managed-by of the `kubernetes` EndpointSlice written here."""
DNS_TIMEOUT = 180.0


def _api(spec: ClusterSpec, path: str, *, method: str = "GET", body: object = None) -> Json:
    """Admin request; the decoded body, or ComponentFailed naming the request and the status."""
    r = request(
        spec.server + path,
        method=method,
        body=body,
        ca_file=spec.pki / "server-ca.crt",
        cert=(spec.pki / "admin.crt", spec.pki / "admin.key"),
    )
    if r.status >= 300 and not (method == "DELETE" and r.status == 404):
        raise process.ComponentFailed(f"{method} {path}: HTTP {r.status}: {r.body[:300]!r}")
    result: Json = json.loads(r.body) if r.body and r.status < 300 else {}
    return result


def apply(spec: ClusterSpec, obj: Json, collection: str) -> None:
    """Create `obj` in `collection`, or replace the one of that name (idempotent `up`)."""
    r = request(
        spec.server + collection,
        method="POST",
        body=obj,
        ca_file=spec.pki / "server-ca.crt",
        cert=(spec.pki / "admin.crt", spec.pki / "admin.key"),
    )
    if r.status == 409:
        path = f"{collection}/{obj['metadata']['name']}"
        current = _api(spec, path)
        meta = {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
        _api(spec, path, method="PUT", body={**obj, "metadata": meta})
    elif r.status >= 300:
        kind, name = obj["kind"], obj["metadata"]["name"]
        raise process.ComponentFailed(f"creating {kind} {name}: HTTP {r.status}: {r.body[:300]!r}")


# ---- the apiserver, from pods ------------------------------------------------------------------
def kubernetes_endpoints(address: str, port: int) -> list[tuple[Json, str]]:
    """Endpoints and EndpointSlice of Service default/kubernetes (what the apiserver's endpoint
    reconciler writes, which `up` turns off as its apiserver listens on loopback only)."""
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": address}], "ports": ports}],
    }
    eps = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": ports,
    }
    return [
        (endpoints, "/api/v1/namespaces/default/endpoints"),
        (eps, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"),
    ]


def gateway(pod_cidr: str) -> str:
    """The pod bridge's address on the node: the first host of its pod CIDR (net/ipam.py)."""
    return str(ipaddress.ip_network(pod_cidr, strict=False).network_address + 1)


def pod_apiserver_address(spec: ClusterSpec) -> str:
    """Where pods reach the apiserver: this host's address on the node segment (`--nodes N`),
    else the node's pod bridge gateway (never an address of the host's own network)."""
    if spec.node_subnet:
        return nodes.root_address(spec)
    node = spec.node_names[0]
    cidrs = nodes.pod_cidrs(spec).get(node, [])
    v4 = [c for c in cidrs if ipaddress.ip_network(c).version == 4]
    if not v4:
        raise process.ComponentFailed(f"node {node} has no IPv4 podCIDR yet: {cidrs}")
    return gateway(v4[0])


def forwarder(spec: ClusterSpec) -> process.Daemon:
    return process.Daemon(name=FORWARDER, run_dir=spec.run, log_dir=spec.logs)


def expose_apiserver(spec: ClusterSpec, *, say: Progress) -> None:
    """Unless the apiserver keeps its own endpoints: forward <pod address>:<apiserver port> to
    the loopback apiserver and point Service default/kubernetes there."""
    if "--endpoint-reconciler-type=none" not in apiserver_command(spec):
        return
    address, port = pod_apiserver_address(spec), spec.ports.apiserver
    d = forwarder(spec)
    process.start(d, nsforward.forward_command(None, [port], address=address))
    process.wait_ready(d, lambda: "forwarding ports" in d.tail(5), timeout=15)
    for obj, collection in kubernetes_endpoints(address, port):
        apply(spec, obj, collection)
    say(f"apiserver reachable from pods: Service kubernetes -> {address}:{port}")


# ---- CoreDNS -----------------------------------------------------------------------------------
def coredns_binary() -> Path:
    """The Go-built CoreDNS (cluster/gobuild/build.sh coredns), or ComponentFailed."""
    path = DEFAULT_CACHE / f"coredns-{dns.coredns_version()}" / "coredns"
    if not path.is_file():
        raise process.ComponentFailed(
            f"CoreDNS binary missing at {path}; run: bash cluster/gobuild/build.sh coredns"
        )
    return path


def runtime_sockets(spec: ClusterSpec) -> list[Path]:
    sims = nodes.sim_nodes(spec)
    return [n.containerd_socket for n in sims] if sims else [spec.containerd_socket]


def deploy_dns(spec: ClusterSpec, *, say: Progress) -> None:
    """Build and import the CoreDNS image on every node, create the addon's objects, and wait
    until DNS answers a cluster name."""
    t0 = time.monotonic()
    image = dns.coredns_image()
    archive = images.build_archive(
        images.coredns_recipe(image, coredns_binary()), DEFAULT_CACHE / "images"
    )
    for sock in runtime_sockets(spec):
        images.import_images(address=sock, archives=[archive])
    ip = dns.service_ip(spec.service_cidr)
    replicas = min(2, len(spec.node_names))
    for obj in dns.manifests(image, ip, replicas=replicas):
        apply(spec, obj, dns.api_path(obj))
    target = wait_dns(spec, via_service=not spec.node_subnet)
    say(
        f"cluster DNS ready: CoreDNS {dns.coredns_version()} (Service kube-dns {ip}) answers "
        f"via {target} ({time.monotonic() - t0:.1f}s)"
    )


def ask(server: str, name: str, *, timeout: float = 1.0) -> dns.Answer:
    """One UDP question to server:53."""
    q = dns.query(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, 53))
        reply, _ = s.recvfrom(4096)
    return dns.parse_answer(reply, ident=int.from_bytes(q[:2], "big"))


def dns_pods(spec: ClusterSpec) -> list[Json]:
    selector = urllib.parse.quote("k8s-app=kube-dns")
    items: list[Json] = _api(
        spec, f"/api/v1/namespaces/{dns.NAMESPACE}/pods?labelSelector={selector}"
    )["items"]
    return items


def _ready_ips(pods: list[Json]) -> list[str]:
    return [
        p["status"]["podIP"]
        for p in pods
        if p.get("status", {}).get("podIP")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    ]


def wait_dns(spec: ClusterSpec, *, via_service: bool, timeout: float = DNS_TIMEOUT) -> str:
    """Until a Ready CoreDNS answers kubernetes.default.svc with the Service's address: asked at
    the Service IP when this host runs a proxy, else at the pod. Returns the address asked."""
    name = f"kubernetes.default.svc.{dns.DOMAIN}"
    deadline = time.monotonic() + timeout
    last = "no Ready CoreDNS pod"
    while time.monotonic() < deadline:
        ips = _ready_ips(dns_pods(spec))
        if ips:
            server = dns.service_ip(spec.service_cidr) if via_service else ips[0]
            try:
                answer = ask(server, name)
                if answer.rcode == 0 and spec.first_service_ip in answer.addresses:
                    return server
                last = f"{server} answered rcode {answer.rcode} {answer.addresses}"
            except (OSError, ValueError) as e:
                last = f"{server}: {e}"
        time.sleep(1)
    states = [
        {c["name"]: c.get("state") for c in p.get("status", {}).get("containerStatuses", [])}
        for p in dns_pods(spec)
    ]
    raise process.ComponentFailed(
        f"cluster DNS: {name} not answered within {timeout:.0f}s ({last}); CoreDNS pods: {states}"
    )


# ---- the whole set -----------------------------------------------------------------------------
def start(spec: ClusterSpec, *, say: Progress) -> None:
    """After the nodes are Ready: a host node's proxy, the apiserver for pods, then DNS."""
    if not spec.node_subnet:
        for node in spec.node_names:
            proxyproc.start_proxy(spec, node, mode=spec.proxy_mode, say=say)
    expose_apiserver(spec, say=say)
    deploy_dns(spec, say=say)


def stop(spec: ClusterSpec, *, say: Progress) -> None:
    """For `down`: the apiserver forwarder (proxies are stopped with their nodes)."""
    if process.stop(forwarder(spec)):
        say(f"stopped {FORWARDER}")


def remove(spec: ClusterSpec, *, say: Progress) -> None:
    """Undo `start` on a cluster that stays up: DNS objects, the `kubernetes` endpoints, the
    forwarder, and a host node's proxy with its rules."""
    image = dns.coredns_image()
    for obj in reversed(dns.manifests(image, dns.service_ip(spec.service_cidr), replicas=1)):
        _api(spec, f"{dns.api_path(obj)}/{obj['metadata']['name']}", method="DELETE")
    selector = urllib.parse.quote("k8s-app=kube-dns")
    pods = f"/api/v1/namespaces/{dns.NAMESPACE}/pods?labelSelector={selector}"
    deadline = time.monotonic() + 60
    while dns_pods(spec) and time.monotonic() < deadline:  # its ReplicaSet goes in the background
        _api(spec, f"{pods}&gracePeriodSeconds=0", method="DELETE")
        time.sleep(1)
    if "--endpoint-reconciler-type=none" in apiserver_command(spec):
        for obj, collection in kubernetes_endpoints("0.0.0.0", 0):
            _api(spec, f"{collection}/{obj['metadata']['name']}", method="DELETE")
    stop(spec, say=say)
    if not spec.node_subnet:
        for node in spec.node_names:
            if proxyproc.stop_proxy(spec, node):
                say(f"stopped pykubelet proxy {node}")
        report = proxyproc.cleanup_root_netns(spec)
        if report:
            say(f"pykubelet proxy --cleanup: {report}")
