"""The iptables rule model of the Service proxy: ClusterState + ProxyConfig -> RuleSet (data).
Mirrors upstream kube-proxy's iptables chain layout; per-Service fragments allow incremental builds.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import itertools
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import NamedTuple

from net.proxy.model import (
    ClusterState,
    Endpoint,
    ProxyConfig,
    Service,
    ServiceKey,
    ServicePort,
    port_name_string,
)
from net.proxy.policy import (
    PortPolicy,
    changed_services,
    holds_node_ip,
    nodeport_ips,
    port_policy,
)

FILTER, NAT = "filter", "nat"
SERVICES = "KUBE-SERVICES"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NODEPORTS = "KUBE-NODEPORTS"
FORWARD = "KUBE-FORWARD"
PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"

# Shared chains we own, in upstream's declaration order.
SHARED_CHAINS: Mapping[str, tuple[str, ...]] = {
    FILTER: (SERVICES, EXTERNAL_SERVICES, FORWARD, NODEPORTS, PROXY_FIREWALL),
    NAT: (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ),
}
# The kubelet's chain; with localhost NodePorts the proxy writes its one rule as upstream does
# (route_localnet=1 would otherwise let other hosts reach 127.0.0.1), and never deletes it.
KUBELET_FIREWALL = "KUBE-FIREWALL"
BLOCK_LOCALNET = (
    '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
    "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
)
LOCALHOST_JUMPS = (
    (FILTER, "INPUT", f"-j {KUBELET_FIREWALL}"),
    (FILTER, "OUTPUT", f"-j {KUBELET_FIREWALL}"),
)
# Per-Service chain prefixes (anything with these prefixes is ours to delete when stale).
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")

# Upstream's largeClusterEndpointsThreshold: above it, per-endpoint comments are left out.
LARGE_CLUSTER_ENDPOINTS = 1000

_NODEPORTS_COMMENT = (
    '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
)

# (table, builtin chain, rule): upstream's iptablesJumpChains, each ensured with Prepend.
BUILTIN_JUMPS: tuple[tuple[str, str, str], ...] = tuple(
    (table, src, f'{extra}-m comment --comment "{comment}" -j {dst}')
    for table, dst, src, comment, extra in (
        (
            FILTER,
            EXTERNAL_SERVICES,
            "INPUT",
            "kubernetes externally-visible service portals",
            "-m conntrack --ctstate NEW ",
        ),
        (
            FILTER,
            EXTERNAL_SERVICES,
            "FORWARD",
            "kubernetes externally-visible service portals",
            "-m conntrack --ctstate NEW ",
        ),
        (FILTER, NODEPORTS, "INPUT", "kubernetes health check service ports", ""),
        (FILTER, SERVICES, "FORWARD", "kubernetes service portals", "-m conntrack --ctstate NEW "),
        (FILTER, SERVICES, "OUTPUT", "kubernetes service portals", "-m conntrack --ctstate NEW "),
        (FILTER, FORWARD, "FORWARD", "kubernetes forwarding rules", ""),
        (
            FILTER,
            PROXY_FIREWALL,
            "INPUT",
            "kubernetes load balancer firewall",
            "-m conntrack --ctstate NEW ",
        ),
        (
            FILTER,
            PROXY_FIREWALL,
            "OUTPUT",
            "kubernetes load balancer firewall",
            "-m conntrack --ctstate NEW ",
        ),
        (
            FILTER,
            PROXY_FIREWALL,
            "FORWARD",
            "kubernetes load balancer firewall",
            "-m conntrack --ctstate NEW ",
        ),
        (NAT, SERVICES, "OUTPUT", "kubernetes service portals", ""),
        (NAT, SERVICES, "PREROUTING", "kubernetes service portals", ""),
        (NAT, POSTROUTING, "POSTROUTING", "kubernetes postrouting rules", ""),
    )
)


@dataclass(frozen=True)
class Fragment:
    """Everything one Service contributes: the chains it owns and its lines in shared chains."""

    service: Service
    endpoints: tuple[Endpoint, ...]
    chains: Mapping[tuple[str, str], tuple[str, ...]]  # (table, chain) -> lines
    jumps: tuple[tuple[str, str, str], ...]  # (table, shared chain, line), in order


_serials = itertools.count(1)
MAX_ANCESTORS = 8
MAX_DELTA = 2000


@dataclass(frozen=True, eq=False)
class RuleSet:
    """The desired rules of every Service. `tables` and `owners` are assembled from the
    fragments on first access (a partial render never needs them)."""

    fragments: Mapping[ServiceKey, Fragment]
    config: ProxyConfig | None = None
    order: tuple[ServiceKey, ...] = ()
    large_cluster: bool = False  # over LARGE_CLUSTER_ENDPOINTS: no per-endpoint comments
    endpoint_total: int = 0
    # serial of an earlier RuleSet this one was patched from -> Services changed since then
    ancestors: Mapping[int, frozenset[ServiceKey]] = field(default_factory=dict)
    jumps: tuple[tuple[str, str, str], ...] = BUILTIN_JUMPS
    serial: int = field(default_factory=lambda: next(_serials))

    @cached_property
    def tables(self) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
        """table ("filter"/"nat") -> chain -> rule lines (the text after "-A CHAIN ")."""
        owned: dict[str, dict[str, tuple[str, ...]]] = {FILTER: {}, NAT: {}}
        frags = self.fragments
        for key in self.order:
            for (t, c), lines in frags[key].chains.items():
                owned[t][c] = lines
        config = self.config or ProxyConfig("", ())
        shared = _Shared(frags, self.order, config)
        return {t: _Table(t, owned[t], shared) for t in (FILTER, NAT)}

    @cached_property
    def owners(self) -> Mapping[str, ServiceKey | None]:
        """chain -> the Service that owns it (None: a shared chain)."""
        out: dict[str, ServiceKey | None] = {c: None for cs in SHARED_CHAINS.values() for c in cs}
        for key in self.order:
            for _t, c in self.fragments[key].chains:
                out[c] = key
        return out

    def changed_since(self, other: RuleSet) -> frozenset[ServiceKey] | None:
        """Services that may differ from `other` when this RuleSet was patched from it
        (within the last MAX_ANCESTORS builds); None when unknown."""
        if other.serial == self.serial:
            return frozenset()
        return self.ancestors.get(other.serial)

    def chain_table(self, chain: str) -> str | None:
        """The table holding a Service-owned chain (shared chains exist in several)."""
        for table in (NAT, FILTER):
            if chain in self.tables.get(table, {}):
                return table
        return None

    @property
    def rule_count(self) -> int:
        return sum(len(lines) for chains in self.tables.values() for lines in chains.values())


@lru_cache(maxsize=65536)
def chain_hash(text: str) -> str:
    """Upstream portProtoHash: base32(sha256(text))[:16]."""
    # base32 works in 5-byte blocks: the first 10 bytes give exactly the first 16 characters
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


@lru_cache(maxsize=1024)
def probability(n: int) -> str:
    """Upstream computeProbability: 1/n with ten decimals."""
    return f"{1.0 / n:0.10f}"


def comment(text: str) -> str:
    return f'"{text}"' if " " in text else text


def is_service_chain(chain: str) -> bool:
    return chain.startswith(SERVICE_CHAIN_PREFIXES)


def builtin_jumps(config: ProxyConfig) -> tuple[tuple[str, str, str], ...]:
    """The jumps from builtin chains this configuration needs (upstream's jump chains, and the
    kubelet's firewall chain with localhost NodePorts)."""
    return BUILTIN_JUMPS + (LOCALHOST_JUMPS if config.localhost_nodeports else ())


def shared_chain_names(table: str, config: ProxyConfig) -> tuple[str, ...]:
    """The chains of `table` that are not per Service, for this configuration."""
    extra = (KUBELET_FIREWALL,) if table == FILTER and config.localhost_nodeports else ()
    return SHARED_CHAINS[table] + extra


def _endpoint_jumps(
    pn: str, svc: Service, eps: list[Endpoint], sep: Mapping[str, str], large: bool
) -> list[str]:
    lines: list[str] = []
    if svc.affinity_timeout is not None:
        for e in eps:
            c = sep[e.address]
            note = "" if large else f'-m comment --comment "{pn} -> {e.address}" '
            lines.append(
                f"{note}-m recent --name {c} --rcheck --seconds {svc.affinity_timeout} "
                f"--reap -j {c}"
            )
    n = len(eps)
    for i, e in enumerate(eps):
        stat = (
            f"-m statistic --mode random --probability {probability(n - i)} " if i < n - 1 else ""
        )
        note = "" if large else f'-m comment --comment "{pn} -> {e.address}" '
        lines.append(f"{note}{stat}-j {sep[e.address]}")
    return lines


class _Port(NamedTuple):
    """One Service port as its rules name it: upstream's chain names, the match of its
    protocol, and where internal, external and load-balancer traffic goes first. (A tuple:
    a full build makes one per Service port.)"""

    pn: str  # "ns/name:port", what comments say
    proto: str
    match: str
    svc: str
    svl: str
    ext: str
    fw: str
    internal: str
    external_policy: str
    lb: str

    @classmethod
    def of(cls, svc: Service, port: ServicePort, p: PortPolicy) -> _Port:
        pn = port_name_string(svc, port)
        proto = port.protocol.lower()
        h = chain_hash(pn + proto)
        names = ("KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h, "KUBE-FW-" + h)
        svc_chain, svl_chain, ext_chain, fw_chain = names
        return cls(
            pn,
            proto,
            f"-m {proto} -p {proto}",
            svc_chain,
            svl_chain,
            ext_chain,
            fw_chain,
            svl_chain if svc.internal_local else svc_chain,
            svl_chain if p.ext_local else svc_chain,
            fw_chain if p.uses_fw else ext_chain,
        )


Jumps = list[tuple[str, str, str]]


def _port_rules(
    svc: Service,
    port: ServicePort,
    all_eps: tuple[Endpoint, ...],
    config: ProxyConfig,
    chains: dict[tuple[str, str], list[str]],
    jumps: Jumps,
    large: bool,
) -> None:
    """One port's lines in the shared chains (`jumps`) and its own chains (`chains`)."""
    p = port_policy(svc, port, all_eps, config.node_name)
    n = _Port.of(svc, port, p)
    refusal = _refusal(n, p)
    _address_jumps(svc, port, n, p, refusal, jumps)
    _nodeport_jumps(svc, port, n, p, refusal, jumps)
    _service_chains(svc, port, n, p, config, chains)
    _endpoint_chains(svc, n, p, chains, large)


def _refusal(n: _Port, p: PortPolicy) -> tuple[str, str]:
    """Target and comment of the filter rules for traffic the port cannot take: REJECT
    without endpoints, DROP without local ones."""
    if not p.has_any:
        return "REJECT", f'"{n.pn} has no endpoints"'
    return "DROP", f'"{n.pn} has no local endpoints"'


def _address_jumps(
    svc: Service,
    port: ServicePort,
    n: _Port,
    p: PortPolicy,
    refusal: tuple[str, str],
    jumps: Jumps,
) -> None:
    """KUBE-SERVICES lines of the cluster IP, external IPs and LB IPs, and the filter
    lines that refuse (`refusal`: target, comment) or firewall them."""
    target, note = refusal
    match, pn = n.match, n.pn
    vip = f"-d {svc.cluster_ip} --dport {port.port}"
    if p.has_internal:
        line = f'-m comment --comment "{pn} cluster IP" {match} {vip} -j {n.internal}'
        jumps.append((NAT, SERVICES, line))
    else:
        jumps.append((FILTER, SERVICES, f"-m comment --comment {note} {match} {vip} -j {target}"))
    for ip in svc.external_ips:
        dst = f"-d {ip} --dport {port.port}"
        if p.has_any:
            line = f'-m comment --comment "{pn} external IP" {match} {dst} -j {n.ext}'
            jumps.append((NAT, SERVICES, line))
        if not p.has_external:
            line = f"-m comment --comment {note} {match} {dst} -j {target}"
            jumps.append((FILTER, EXTERNAL_SERVICES, line))
    for ip in svc.lb_ips:
        dst = f"-d {ip} --dport {port.port}"
        if p.has_any:
            line = f'-m comment --comment "{pn} loadbalancer IP" {match} {dst} -j {n.lb}'
            jumps.append((NAT, SERVICES, line))
        if p.uses_fw:
            line = (
                f'-m comment --comment "{pn} traffic not accepted by {n.fw}" {match} {dst} -j DROP'
            )
            jumps.append((FILTER, PROXY_FIREWALL, line))
    if not p.has_external:
        for ip in svc.lb_ips:
            line = f"-m comment --comment {note} {match} -d {ip} --dport {port.port} -j {target}"
            jumps.append((FILTER, EXTERNAL_SERVICES, line))


def _nodeport_jumps(
    svc: Service,
    port: ServicePort,
    n: _Port,
    p: PortPolicy,
    refusal: tuple[str, str],
    jumps: Jumps,
) -> None:
    """KUBE-NODEPORTS lines of the NodePort and the health check node port, and the filter
    line that refuses (`refusal`: target, comment) the NodePort."""
    target, note = refusal
    if port.node_port:
        if p.has_any:
            line = (
                f"-m comment --comment {comment(n.pn)} {n.match} --dport {port.node_port} "
                f"-j {n.ext}"
            )
            jumps.append((NAT, NODEPORTS, line))
        if not p.has_external:
            line = (
                f"-m comment --comment {note} -m addrtype --dst-type LOCAL {n.match} "
                f"--dport {port.node_port} -j {target}"
            )
            jumps.append((FILTER, EXTERNAL_SERVICES, line))
    if svc.health_check_node_port:
        line = (
            f'-m comment --comment "{n.pn} health check node port" -m tcp -p tcp '
            f"--dport {svc.health_check_node_port} -j ACCEPT"
        )
        jumps.append((FILTER, NODEPORTS, line))


def _service_chains(
    svc: Service,
    port: ServicePort,
    n: _Port,
    p: PortPolicy,
    config: ProxyConfig,
    chains: dict[tuple[str, str], list[str]],
) -> None:
    """The masquerade rule of the internal chain, the external chain (masquerade, local
    short-circuits, policy) and the firewall chain (loadBalancerSourceRanges)."""

    def add(chain: str, line: str) -> None:
        chains.setdefault((NAT, chain), []).append(line)

    pn = n.pn
    if p.has_internal:
        vip = f"-d {svc.cluster_ip} --dport {port.port}"
        args = f'-m comment --comment "{pn} cluster IP" {n.match} {vip}'
        if config.masquerade_all:
            add(n.internal, f"{args} -j {MARK_MASQ}")
        elif config.cluster_cidr:
            add(n.internal, f"{args} ! -s {config.cluster_cidr} -j {MARK_MASQ}")
    if p.uses_ext_chain:
        chains.setdefault((NAT, n.ext), [])
        if not p.ext_local:
            note = f'"masquerade traffic for {pn} external destinations"'
            add(n.ext, f"-m comment --comment {note} -j {MARK_MASQ}")
        else:
            if config.cluster_cidr:
                note = f'"pod traffic for {pn} external destinations"'
                add(n.ext, f"-m comment --comment {note} -s {config.cluster_cidr} -j {n.svc}")
            local = "-m addrtype --src-type LOCAL"
            note = f'"masquerade LOCAL traffic for {pn} external destinations"'
            add(n.ext, f"-m comment --comment {note} {local} -j {MARK_MASQ}")
            note = f'"route LOCAL traffic for {pn} external destinations"'
            add(n.ext, f"-m comment --comment {note} {local} -j {n.svc}")
        if p.has_external:
            add(n.ext, f"-j {n.external_policy}")
    if p.uses_fw:
        fw_args = f'-m comment --comment "{pn} loadbalancer IP"'
        for cidr in svc.lb_source_ranges:
            add(n.fw, f"{fw_args} -s {cidr} -j {n.ext}")
        if holds_node_ip(svc.lb_source_ranges, config.node_ips):
            # the node's own requests to a local LB IP arrive from that IP (upstream allowFromNode)
            for ip in svc.lb_ips:
                add(n.fw, f"{fw_args} -s {ip} -j {n.ext}")
        note = f'"other traffic to {pn} will be dropped by KUBE-PROXY-FIREWALL"'
        add(n.fw, f"-m comment --comment {note}")


def _endpoint_chains(
    svc: Service,
    n: _Port,
    p: PortPolicy,
    chains: dict[tuple[str, str], list[str]],
    large: bool,
) -> None:
    """The balancing cluster (KUBE-SVC) and local (KUBE-SVL) chains, and a KUBE-SEP chain per
    reachable endpoint (masquerade hairpin traffic, affinity, DNAT)."""
    pn, proto = n.pn, n.proto
    sep = {
        e.address: "KUBE-SEP-" + chain_hash(pn + proto + e.address) for e in p.reachable + p.local
    }
    if p.cluster:
        chains.setdefault((NAT, n.svc), []).extend(_endpoint_jumps(pn, svc, p.cluster, sep, large))
    if p.uses_local_chain:
        chains.setdefault((NAT, n.svl), []).extend(_endpoint_jumps(pn, svc, p.local, sep, large))
    for e in p.reachable:
        c = sep[e.address]
        recent = f"-m recent --name {c} --set " if svc.affinity_timeout is not None else ""
        note = "" if large else f"-m comment --comment {comment(pn)} "
        chains[(NAT, c)] = [
            f"{note}-s {e.ip} -j {MARK_MASQ}",
            f"{note}{recent}{n.match} -j DNAT --to-destination {e.address}",
        ]


def fragment(
    svc: Service, endpoints: tuple[Endpoint, ...], config: ProxyConfig, large: bool = False
) -> Fragment:
    """The rules of one Service (all its ports). `large`: upstream's large-cluster mode,
    which leaves the comments out of KUBE-SEP chains and of the jumps to them."""
    chains: dict[tuple[str, str], list[str]] = {}
    jumps: list[tuple[str, str, str]] = []
    for port in svc.ports:
        _port_rules(svc, port, endpoints, config, chains, jumps, large)
    return Fragment(svc, endpoints, {k: tuple(v) for k, v in chains.items()}, tuple(jumps))


def nodeport_destinations(config: ProxyConfig) -> list[str]:
    """What the KUBE-SERVICES -> KUBE-NODEPORTS jump matches: every local address, or the node
    IPs inside --nodeport-addresses (policy.nodeport_ips, upstream's GetNodeIPs)."""
    ips = nodeport_ips(config)
    if ips is None:
        # 127/8 only works with route_localnet=1, which the daemon sets for localhost NodePorts
        return [
            "-m addrtype --dst-type LOCAL"
            + ("" if config.localhost_nodeports else " ! -d 127.0.0.0/8")
        ]
    return [f"-d {ip}" for ip in ips]


def static_chains(config: ProxyConfig) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """Head and tail lines of each shared chain (Service lines go in between)."""
    mark = config.masquerade_mark
    heads: dict[tuple[str, str], tuple[list[str], list[str]]] = {
        (t, c): ([], []) for t, chains in SHARED_CHAINS.items() for c in chains
    }
    heads[(NAT, POSTROUTING)][0].extend(
        [
            f"-m mark ! --mark {mark}/{mark} -j RETURN",
            f"-j MARK --xor-mark {mark}",
            '-m comment --comment "kubernetes service traffic requiring SNAT" '
            "-j MASQUERADE --random-fully",
        ]
    )
    heads[(NAT, MARK_MASQ)][0].append(f"-j MARK --or-mark {mark}")
    if config.localhost_nodeports:
        heads[(FILTER, KUBELET_FIREWALL)] = ([BLOCK_LOCALNET], [])
    heads[(FILTER, FORWARD)][0].extend(
        [
            "-m conntrack --ctstate INVALID -j DROP",
            '-m comment --comment "kubernetes forwarding rules" '
            f"-m mark --mark {mark}/{mark} -j ACCEPT",
            '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
            "--ctstate RELATED,ESTABLISHED -j ACCEPT",
        ]
    )
    heads[(NAT, SERVICES)][1].extend(
        f"-m comment --comment {_NODEPORTS_COMMENT} {dst} -j {NODEPORTS}"
        for dst in nodeport_destinations(config)
    )
    return heads


def build(
    state: ClusterState,
    config: ProxyConfig,
    previous: RuleSet | None = None,
    changed: Collection[ServiceKey] | None = None,
) -> RuleSet:
    """The desired rules. With `previous` (built with the same config), fragments of Services
    whose Service and endpoints are unchanged are reused; with `changed` too, only those keys
    are looked at (every other Service is assumed unchanged), which keeps a one-Service change
    O(changed) in Python work."""
    services, endpoints = state.services, state.endpoints
    empty: tuple[Endpoint, ...] = ()
    if previous is None or previous.config != config:
        return _full_build(state, config)
    old = previous.fragments
    if changed is None:
        changed = changed_services(state, old)
    total = previous.endpoint_total
    for key in changed:
        f = old.get(key)
        if f is not None:
            total -= len(f.endpoints)
        if key in services:
            total += len(endpoints.get(key, empty))
    large = total > LARGE_CLUSTER_ENDPOINTS
    if large != previous.large_cluster:
        return _full_build(state, config)
    frags = dict(old)
    updates: dict[ServiceKey, Fragment | None] = {}
    for key in changed:
        current = services.get(key)
        if current is None:
            frags.pop(key, None)
            updates[key] = None
        else:
            frags[key] = updates[key] = fragment(
                current, tuple(endpoints.get(key, empty)), config, large
            )
    order = previous.order
    added = [k for k, f in updates.items() if f is not None and k not in old]
    gone = {k for k, f in updates.items() if f is None and k in old}
    if added or gone:
        new_order = [k for k in order if k not in gone] if gone else list(order)
        for k in added:
            bisect.insort(new_order, k)
        order = tuple(new_order)
    delta = frozenset(updates)
    ancestors: dict[int, frozenset[ServiceKey]] = {previous.serial: delta}
    for serial, keys in list(previous.ancestors.items())[: MAX_ANCESTORS - 1]:
        if len(keys) + len(delta) <= MAX_DELTA:
            ancestors[serial] = keys | delta
    return RuleSet(frags, config, order, large, total, ancestors, previous.jumps)


def _full_build(state: ClusterState, config: ProxyConfig) -> RuleSet:
    services, endpoints = state.services, state.endpoints
    empty: tuple[Endpoint, ...] = ()
    total = sum(len(endpoints.get(k, empty)) for k in services)
    large = total > LARGE_CLUSTER_ENDPOINTS
    frags = {
        k: fragment(services[k], tuple(endpoints.get(k, empty)), config, large)
        for k in sorted(services)
    }
    return RuleSet(frags, config, tuple(frags), large, total, jumps=builtin_jumps(config))


class _Table(Mapping[str, tuple[str, ...]]):
    """A table's chains: per-Service chains held directly, shared chains (whose middle is
    every Service's lines in order) assembled on first access and cached."""

    def __init__(self, table: str, owned: dict[str, tuple[str, ...]], shared: _Shared) -> None:
        self._table, self._owned, self._shared = table, owned, shared
        self._names = shared.names(table)

    def __getitem__(self, chain: str) -> tuple[str, ...]:
        if chain in self._owned:
            return self._owned[chain]
        if chain in self._names:
            return self._shared.chain(self._table, chain)
        raise KeyError(chain)

    def __contains__(self, chain: object) -> bool:
        return chain in self._owned or chain in self._names

    def __iter__(self) -> Iterator[str]:
        yield from self._names
        yield from self._owned

    def __len__(self) -> int:
        return len(self._names) + len(self._owned)


class _Shared:
    def __init__(
        self,
        frags: Mapping[ServiceKey, Fragment],
        order: tuple[ServiceKey, ...],
        config: ProxyConfig,
    ) -> None:
        self._frags, self._order, self._config = frags, order, config
        self._cache: dict[tuple[str, str], tuple[str, ...]] | None = None

    def names(self, table: str) -> tuple[str, ...]:
        return shared_chain_names(table, self._config)

    def chain(self, table: str, chain: str) -> tuple[str, ...]:
        if self._cache is None:
            heads = static_chains(self._config)
            middle: dict[tuple[str, str], list[str]] = {k: [] for k in heads}
            for key in self._order:
                for t, c, line in self._frags[key].jumps:
                    middle[(t, c)].append(line)
            self._cache = {k: (*h, *middle[k], *tail) for k, (h, tail) in heads.items()}
        return self._cache[(table, chain)]
