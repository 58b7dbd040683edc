"""The Service and endpoint policy every proxy mode follows, decided before any mode names a chain,
a set or a virtual server: which endpoints serve a port (upstream's CategorizeEndpoints), which
paths a port has, which node addresses take NodePorts, which Services changed. Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from net.proxy.model import ClusterState, Endpoint, ProxyConfig, Service, ServiceKey, ServicePort

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def port_endpoints(port: ServicePort, endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """The endpoints of one Service port (same port name and protocol)."""
    return [e for e in endpoints if e.port_name == port.name and e.protocol == port.protocol]


def serving(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """The endpoints traffic may go to: the ready ones, else the serving terminating ones
    (upstream's fallback while a rollout drains the last ready ones)."""
    ready = [e for e in endpoints if e.ready]
    return ready or [e for e in endpoints if e.serving and e.terminating]


def categorize(
    svc: Service, port: ServicePort, eps: list[Endpoint], node: str
) -> tuple[list[Endpoint], list[Endpoint], list[Endpoint], bool]:
    """Upstream CategorizeEndpoints (no topology hints) of one port's endpoints: cluster,
    local, reachable (cluster and local together), and whether any endpoint is usable."""
    external = bool(port.node_port or svc.external_ips or svc.lb_ips)
    ext_local = external and svc.external_local
    # An externally reachable port always needs cluster endpoints: even with both policies
    # Local, the external path short-circuits pod and node-local traffic to the cluster path.
    uses_cluster = not svc.internal_local or external
    uses_local = svc.internal_local or ext_local
    cluster: list[Endpoint] = []
    has_any = False
    if uses_cluster:
        cluster = serving(eps)
        has_any = bool(cluster)
    if not uses_local:
        return cluster, [], cluster, has_any
    local_ready = local_terminating = False
    for e in eps:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.node_name == node
        elif e.serving and e.terminating:
            has_any = True
            local_terminating = local_terminating or e.node_name == node
    local: list[Endpoint] = []
    if local_ready:
        local = [e for e in eps if e.node_name == node and e.ready]
    elif local_terminating:
        local = [e for e in eps if e.node_name == node and e.serving and e.terminating]
    if not uses_cluster:
        return [], local, local, has_any
    if local_ready or not local:
        return cluster, local, cluster, has_any
    seen = {e.address: e for e in cluster}
    for e in local:
        seen.setdefault(e.address, e)
    return cluster, local, list(seen.values()), has_any


@dataclass(frozen=True)
class PortPolicy:
    """What every mode decides for one Service port before naming anything: its endpoints
    (categorize), whether it is externally reachable, and which of the cluster, local,
    external and firewall paths exist."""

    cluster: list[Endpoint]
    local: list[Endpoint]
    reachable: list[Endpoint]
    has_any: bool
    ext_local: bool
    uses_local_chain: bool
    has_internal: bool  # internal traffic has somewhere to go (iTP Local: a local endpoint)
    has_external: bool  # likewise for external traffic under eTP
    uses_ext_chain: bool
    uses_fw: bool


def port_policy(
    svc: Service, port: ServicePort, all_eps: tuple[Endpoint, ...], node: str
) -> PortPolicy:
    cluster, local, reachable, has_any = categorize(svc, port, port_endpoints(port, all_eps), node)
    external = bool(port.node_port or svc.external_ips or svc.lb_ips)
    ext_local = external and svc.external_local
    return PortPolicy(
        cluster,
        local,
        reachable,
        has_any,
        ext_local,
        uses_local_chain=bool(local) and (svc.internal_local or ext_local),
        has_internal=has_any and (bool(local) if svc.internal_local else True),
        has_external=has_any and (bool(local) if ext_local else True),
        uses_ext_chain=has_any and external,
        uses_fw=has_any and bool(svc.lb_ips) and bool(svc.lb_source_ranges),
    )


@lru_cache(maxsize=1024)
def holds_node_ip(cidrs: tuple[str, ...], node_ips: tuple[str, ...]) -> bool:
    """Does one of `cidrs` (loadBalancerSourceRanges) hold a node IP? Then the node's own
    requests to a local LB IP are allowed too (upstream's allowFromNode)."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    for ip in node_ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if any(addr.version == n.version and addr in n for n in nets):
            return True
    return False


def nodeport_ips(config: ProxyConfig) -> tuple[str, ...] | None:
    """The node addresses that take NodePort traffic (upstream's NodePortAddresses for IPv4):
    None for every local address (no IPv4 CIDR given, or 0.0.0.0/0), else the node IPs inside
    --nodeport-addresses, and 127.0.0.1 with localhost NodePorts when a CIDR holds it."""
    nets = []
    for cidr in config.nodeport_addresses:
        try:
            nets.append(ipaddress.IPv4Network(cidr, strict=False))
        except ValueError:
            continue
    if not nets or any(n.prefixlen == 0 for n in nets):
        return None
    out: list[str] = []
    for ip in config.node_ips:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            continue
        if any(addr in n for n in nets) and str(addr) not in out:
            out.append(str(addr))
    if config.localhost_nodeports and any(LOOPBACK in n for n in nets):
        out.append(str(LOOPBACK))
    return tuple(out)


class Built(Protocol):
    """What a mode's per-Service fragment was built from."""

    @property
    def service(self) -> Service: ...
    @property
    def endpoints(self) -> tuple[Endpoint, ...]: ...


def changed_services(state: ClusterState, old: Mapping[ServiceKey, Built]) -> list[ServiceKey]:
    """Services whose object or endpoints differ from what `old` (the previous rule set's
    per-Service fragments, of any mode) was built from; removed ones included."""
    empty: tuple[Endpoint, ...] = ()
    changed = [k for k in old if k not in state.services]
    for key, svc in state.services.items():
        f = old.get(key)
        eps = state.endpoints.get(key, empty)
        if (
            f is None
            or not (f.service is svc or f.service == svc)
            or not (f.endpoints is eps or f.endpoints == tuple(eps))
        ):
            changed.append(key)
    return changed
