"""The Service proxy's input model: Services and endpoints as plain frozen data.
Owns parsing raw v1 Service / discovery.k8s.io/v1 EndpointSlice dicts into ClusterState.

How the proxy is laid out (imports go down this list, never up; no mode imports another's
package except IPVS mode, which also restores iptables rules, using iptables mode's):

    net.proxy.model      this input model (ClusterState, ProxyConfig): what every mode reads
    net.proxy.policy     what every mode decides alike: which endpoints serve a port
                         (categorize, port_policy), NodePort addresses, changed Services
    net.proxy.views      what the debug views show (TraceResult, Explanation)
    net.proxy.backend    ProxyBackend: the interface each mode implements (sync = build from
                         this model + apply full/partial; settle; trace; explain; metrics)
    net.proxy.iptables   rules (RuleSet, incremental build), render (iptables-restore text),
                         executor, saved, trace, explain, cleanup, metrics, backend
    net.proxy.nftables   rules (NftRuleSet over a shared and 16 shard tables), batch (nf_tables
                         ops), trace, explain, cleanup, backend (netlink, via net.nft)
    net.proxy.ipvs       plan (virtual/real servers, ipsets, fixed iptables rules), netlink
                         (encoding), cleanup, backend (pyroute2)
    net.proxy.modes      --proxy-mode -> the mode's backend, made once at start-up
    net.proxy.proxier    the sync engine: informer events -> pending changes -> backend.sync;
                         with conntrack (stale UDP flows), metrics and history
    net.proxy.daemon     the composition root, with syncloop (pacing), nodes (Node cache,
                         routes), debug (the /debug views), http, host and cleanup (--cleanup)
IPv4 only: IPv6 cluster IPs, addresses and slices are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ServiceKey = tuple[str, str]  # (namespace, name)

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class ProxyConfig:
    node_name: str
    node_ips: tuple[str, ...]
    cluster_cidr: str | None = None
    masquerade_all: bool = False
    masquerade_bit: int = 14
    nodeport_addresses: tuple[str, ...] = ()  # CIDRs; empty = all local addresses
    localhost_nodeports: bool = False  # NodePorts on 127.0.0.1 (the daemon: upstream's default)

    @property
    def masquerade_mark(self) -> str:
        return f"{1 << self.masquerade_bit:#x}"


@dataclass(frozen=True)
class ServicePort:
    name: str  # "" for a single unnamed port
    protocol: str  # TCP, UDP or SCTP
    port: int
    node_port: int = 0


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str  # ClusterIP, NodePort or LoadBalancer
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    external_ips: tuple[str, ...] = ()
    lb_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip
    lb_source_ranges: tuple[str, ...] = ()
    affinity_timeout: int | None = None  # sessionAffinity ClientIP: timeoutSeconds; None: off
    external_local: bool = False  # externalTrafficPolicy Local
    internal_local: bool = False  # internalTrafficPolicy Local
    health_check_node_port: int = 0

    @property
    def key(self) -> ServiceKey:
        return (self.namespace, self.name)

    @property
    def externally_accessible(self) -> bool:
        return bool(self.external_ips or self.lb_ips or any(p.node_port for p in self.ports))


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    port_name: str
    protocol: str
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    target: str = field(default="", compare=True)  # "Pod/NAME" from targetRef, informative

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ClusterState:
    services: Mapping[ServiceKey, Service]
    endpoints: Mapping[ServiceKey, tuple[Endpoint, ...]]


def port_name_string(svc: Service, port: ServicePort) -> str:
    """Upstream's ServicePortName.String(): "ns/name" or "ns/name:port"."""
    base = f"{svc.namespace}/{svc.name}"
    return f"{base}:{port.name}" if port.name else base


def _ipv4(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def _cidr4(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Network(value.strip(), strict=False))
    except ValueError:
        return None


def _port(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        return None
    return value


def _vip(ingress: Any) -> str | None:
    """The IPv4 of a status.loadBalancer.ingress entry the proxy captures: none in ipMode
    Proxy (the load balancer itself sends to the nodes; upstream IsVIPMode)."""
    if not isinstance(ingress, Mapping) or ingress.get("ipMode") not in (None, "VIP"):
        return None
    return _ipv4(ingress.get("ip"))


def service_from_object(obj: Mapping[str, Any]) -> Service | None:
    """A v1 Service dict as a Service, or None when the proxy ignores it (headless,
    ExternalName, no IPv4 cluster IP) or it is malformed."""
    try:
        return _service(obj)
    except (AttributeError, TypeError, ValueError, KeyError):
        return None


def _service(obj: Mapping[str, Any]) -> Service | None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name")
    if not isinstance(name, str) or not name or not isinstance(ns, str):
        return None
    stype = spec.get("type") or "ClusterIP"
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer"):
        return None
    candidates = list(spec.get("clusterIPs") or []) or [spec.get("clusterIP")]
    cluster_ip = next((ip for ip in map(_ipv4, candidates) if ip), None)
    if cluster_ip is None:
        return None
    ports: list[ServicePort] = []
    seen: set[tuple[str, str]] = set()
    for raw in spec.get("ports") or []:
        proto = raw.get("protocol") or "TCP"
        port = _port(raw.get("port"))
        pname = raw.get("name") or ""
        if proto not in PROTOCOLS or port is None or not isinstance(pname, str):
            continue
        if (pname, proto) in seen:
            continue
        seen.add((pname, proto))
        node_port = _port(raw.get("nodePort")) if stype != "ClusterIP" else None
        ports.append(ServicePort(pname, proto, port, node_port or 0))
    if not ports:
        return None
    external_ips = tuple(sorted({ip for ip in map(_ipv4, spec.get("externalIPs") or []) if ip}))
    lb_ips: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()
    if stype == "LoadBalancer":
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb_ips = tuple(sorted({ip for ip in map(_vip, ingress) if ip}))
        ranges = tuple(
            r for r in (_cidr4(x) for x in spec.get("loadBalancerSourceRanges") or []) if r
        )
    timeout: int | None = None
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
            "timeoutSeconds"
        )
        timeout = cfg if isinstance(cfg, int) and 0 < cfg <= 86400 else 10800
    external = bool(external_ips or lb_ips or any(p.node_port for p in ports))
    return Service(
        namespace=ns,
        name=name,
        type=stype,
        cluster_ip=cluster_ip,
        ports=tuple(ports),
        external_ips=external_ips,
        lb_ips=lb_ips,
        lb_source_ranges=ranges,
        affinity_timeout=timeout,
        external_local=external and spec.get("externalTrafficPolicy") == "Local",
        internal_local=spec.get("internalTrafficPolicy") == "Local",
        health_check_node_port=_port(spec.get("healthCheckNodePort")) or 0,
    )


def _rank(ep: Endpoint) -> int:
    return 2 if ep.ready else 1 if ep.serving else 0


def _slice_endpoints(obj: Mapping[str, Any]) -> tuple[ServiceKey, list[Endpoint]] | None:
    meta = obj.get("metadata") or {}
    if obj.get("addressType") != "IPv4":
        return None
    svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    ns = meta.get("namespace") or "default"
    if not isinstance(svc, str) or not svc or not isinstance(ns, str):
        return None
    ports = []
    for raw in obj.get("ports") or []:
        port = _port(raw.get("port"))
        proto = raw.get("protocol") or "TCP"
        pname = raw.get("name") or ""
        if port is not None and proto in PROTOCOLS and isinstance(pname, str):
            ports.append((pname, proto, port))
    out: list[Endpoint] = []
    for ep in obj.get("endpoints") or []:
        addresses = ep.get("addresses") or []
        ip = _ipv4(addresses[0]) if addresses else None
        if ip is None:
            continue
        cond = ep.get("conditions") or {}
        ready = cond.get("ready") is not False  # nil means ready
        serving = cond.get("serving") if isinstance(cond.get("serving"), bool) else ready
        terminating = cond.get("terminating") is True
        node = ep.get("nodeName") if isinstance(ep.get("nodeName"), str) else None
        ref = ep.get("targetRef") or {}
        target = f"{ref.get('kind')}/{ref.get('name')}" if ref.get("name") else ""
        for pname, proto, port in ports:
            out.append(
                Endpoint(ip, port, pname, proto, ready, bool(serving), terminating, node, target)
            )
    return (ns, svc), out


def endpoints_from_slices(
    slices: Iterable[Mapping[str, Any]],
) -> dict[ServiceKey, tuple[Endpoint, ...]]:
    """Endpoints per Service from EndpointSlices, deduplicated across slices (the most
    usable copy of an address wins) and sorted by "ip:port" as upstream does."""
    merged: dict[ServiceKey, dict[tuple[str, str, str, int], Endpoint]] = {}
    for obj in slices:
        try:
            got = _slice_endpoints(obj)
        except (AttributeError, TypeError, ValueError, KeyError, IndexError):
            continue
        if got is None:
            continue
        key, eps = got
        bucket = merged.setdefault(key, {})
        for ep in eps:
            k = (ep.port_name, ep.protocol, ep.ip, ep.port)
            old = bucket.get(k)
            if old is None or _rank(ep) > _rank(old):
                bucket[k] = ep
    return {
        key: tuple(sorted(bucket.values(), key=lambda e: (e.port_name, e.protocol, e.address)))
        for key, bucket in merged.items()
    }


def state_from_objects(
    services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]]
) -> ClusterState:
    """ClusterState from raw API dicts; invalid objects are skipped, never raised on."""
    svcs: dict[ServiceKey, Service] = {}
    for obj in services:
        svc = service_from_object(obj) if isinstance(obj, Mapping) else None
        if svc is not None:
            svcs[svc.key] = svc
    eps = endpoints_from_slices(s for s in slices if isinstance(s, Mapping))
    return ClusterState(svcs, {k: v for k, v in eps.items() if k in svcs})
