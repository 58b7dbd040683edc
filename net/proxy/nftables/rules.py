"""The nftables rule model of the Service proxy: ClusterState + ProxyConfig -> NftRuleSet, the
shared `pykube-proxy` table and SHARDS per-Service tables as net.nft.ir data (nothing here runs).

Layout (upstream kube-proxy's nftables mode, split over tables so a commit validates one shard):
- shard table `pykube-proxy-NN`: nat-prerouting / nat-output (dstnat) -> `services`, which
  dispatches through the verdict maps `service-ips` (ClusterIP, externalIP, LB IP) and
  `service-nodeports` to per-Service-port chains service-/local-/external-/firewall-<base> and
  endpoint-<base>__<ip>/<port>; its own `mark-for-masquerade`; ClientIP affinity timeout sets.
- shared table `pykube-proxy`: postrouting `masquerading`, the filter chains, and data-only sets
  of Services without (local) endpoints, so changing those needs no rule and no validation.
A Service's NftFragment is what it adds to its shard (chains, map elements, affinity sets) and
to the shared sets; the batches (net.proxy.nftables.batch) diff fragments.
An element key two Services name (one externalIP on both) goes to the first one only.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from net.nft import ir
from net.nft.ir import Cmp, Field, Rule, Verdict, VerdictKind
from net.nft.nogc import no_gc
from net.proxy.model import (
    ClusterState,
    Endpoint,
    ProxyConfig,
    Service,
    ServiceKey,
    ServicePort,
)
from net.proxy.policy import (
    PortPolicy,
    changed_services,
    holds_node_ip,
    nodeport_ips,
    port_policy,
)

SHARDS = 16
SHARED_TABLE = "pykube-proxy"

# shard tables
NAT_PREROUTING, NAT_OUTPUT = "nat-prerouting", "nat-output"
SERVICES = "services"
MARK_MASQ = "mark-for-masquerade"
SERVICE_IPS, SERVICE_NODEPORTS, NODEPORT_IPS = "service-ips", "service-nodeports", "nodeport-ips"
# shared table
FILTER_INPUT, FILTER_FORWARD, FILTER_OUTPUT = "filter-input", "filter-forward", "filter-output"
NAT_POSTROUTING = "nat-postrouting"
MASQUERADING = "masquerading"
FORWARD = "forward"
SERVICE_CHECK = "service-endpoints-check"
EXTERNAL_CHECK = "external-endpoints-check"
NODEPORT_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"  # reject: no endpoints at all (IP . proto . port)
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"  # reject (proto . port)
NO_LOCAL_SERVICES = "no-local-endpoint-services"  # drop: ClusterIP, iTP Local, none local
NO_LOCAL_EXTERNAL = "no-local-endpoint-external"  # drop: external/LB IP, eTP Local, none local
NO_LOCAL_NODEPORTS = "no-local-endpoint-nodeports"  # drop: NodePort, eTP Local, none local

# Per-Service chain and set name prefixes (upstream's), each followed by a hashed base name.
SERVICE_PREFIX, LOCAL_PREFIX, EXTERNAL_PREFIX = "service-", "local-", "external-"
FIREWALL_PREFIX, ENDPOINT_PREFIX, AFFINITY_PREFIX = "firewall-", "endpoint-", "affinity-"
DSTNAT_PRIORITY, SRCNAT_PRIORITY = -100, 100
FILTER_PRIORITY = DSTNAT_PRIORITY - 10  # upstream's filter chains (input and forward)
# The node's own packets are checked after nat output, as iptables' filter OUTPUT is: a
# connection some Service DNATs (another Service's externalIP, an eTP Local short-circuit) is
# never refused for a destination it no longer has.
OUTPUT_FILTER_PRIORITY = DSTNAT_PRIORITY + 10
NAME_MAX = 240  # leaves room for the prefixes within nft's 255 characters

SVC_KEY = (Field.IP_DADDR, Field.L4PROTO, Field.TH_DPORT)
PORT_KEY = (Field.L4PROTO, Field.TH_DPORT)
ElementKey = tuple[str | int, ...]
Claim = tuple[str, ElementKey]  # (set or map name, element key)

_CT_NEW = Cmp(Field.CT_STATE, "new")
_TO_MARK = Verdict(VerdictKind.JUMP, MARK_MASQ)
_DROP = Verdict(VerdictKind.DROP)


def shard_table(i: int) -> str:
    return f"{SHARED_TABLE}-{i:02d}"


def shard_of(key: ServiceKey, shards: int = SHARDS) -> int:
    """The shard of a Service: the first 4 bytes of sha256("ns/name"), mod `shards` (stable
    across runs and processes)."""
    digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % shards


def shard_index(table: str) -> int | None:
    """N for a table named pykube-proxy-NN, else None."""
    prefix = SHARED_TABLE + "-"
    rest = table[len(prefix) :] if table.startswith(prefix) else ""
    return int(rest) if len(rest) == 2 and rest.isdigit() else None


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32 alphabet
_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # two base32 digits per 10 bits


_UNSAFE = re.compile(r"[^A-Za-z0-9_./-]")  # what nft names cannot hold (API names never do)


@lru_cache(maxsize=131072)
def _hashed(text: str, salt: str = "") -> str:
    """Upstream hashAndTruncate: "<8 base32 chars of sha256>-<text>", at most NAME_MAX long.
    Characters nft refuses in a name show as "_" (the hash keeps such names distinct)."""
    n = int.from_bytes(hashlib.sha256((text + salt).encode()).digest()[:5], "big")
    pairs = _B32_PAIRS
    h = pairs[n >> 30] + pairs[(n >> 20) & 1023] + pairs[(n >> 10) & 1023] + pairs[n & 1023]
    out = f"{h}-{_UNSAFE.sub('_', text)}"
    return out if len(out) <= NAME_MAX else out[: NAME_MAX - 3] + "..."


def port_base(svc: Service, port: ServicePort) -> str:
    """The part a Service port's chain names share: HASH-ns/name/proto/portname."""
    return _hashed(f"{svc.namespace}/{svc.name}/{port.protocol.lower()}/{port.name}")


def _endpoint_text(svc: Service, port: ServicePort, ep: Endpoint) -> str:
    return f"{svc.namespace}/{svc.name}/{port.protocol.lower()}/{port.name}__{ep.ip}/{ep.port}"


def endpoint_chain(svc: Service, port: ServicePort, ep: Endpoint) -> str:
    return ENDPOINT_PREFIX + _hashed(_endpoint_text(svc, port, ep))


def affinity_set(svc: Service, port: ServicePort, ep: Endpoint, timeout: int) -> str:
    """The endpoint's ClientIP affinity set. The timeout is part of the hash: a set's timeout
    cannot change in place, so a new timeout means a new set (and the old one goes stale)."""
    return AFFINITY_PREFIX + _hashed(_endpoint_text(svc, port, ep), f"@{timeout}s")


@dataclass(frozen=True)
class NftFragment:
    """Everything one Service contributes: chains (in order) and affinity sets of its shard
    table, its elements of the shard's maps and of the shared table's sets."""

    service: Service
    endpoints: tuple[Endpoint, ...]
    shard: int
    chains: Mapping[str, tuple[Rule, ...]]
    sets: tuple[ir.SetDef, ...]
    elements: Mapping[Claim, ir.Element]
    shared_elements: Mapping[Claim, ir.Element]

    def same_rules(self, other: NftFragment | None) -> bool:
        return other is self or (
            other is not None
            and other.shard == self.shard
            and other.chains == self.chains
            and other.sets == self.sets
            and other.elements == self.elements
            and other.shared_elements == self.shared_elements
        )


class _Out:
    """Accumulates one Service's fragment."""

    def __init__(self) -> None:
        self.chains: dict[str, list[Rule]] = {}
        self.sets: dict[str, ir.SetDef] = {}
        self.elements: dict[Claim, ir.Element] = {}
        self.shared: dict[Claim, ir.Element] = {}

    def rule(self, chain: str, *exprs: ir.Expr, comment: str | None = None) -> None:
        self.chains.setdefault(chain, []).append(Rule(exprs, comment))

    def element(self, m: str, key: ElementKey, chain: str) -> None:
        self.elements.setdefault((m, key), ir.Element(key, Verdict(VerdictKind.GOTO, chain)))

    def flag(self, s: str, key: ElementKey) -> None:
        self.shared.setdefault((s, key), ir.Element(key))


@lru_cache(maxsize=64)
def _proto(proto: str) -> Cmp:
    return Cmp(Field.L4PROTO, proto)


@lru_cache(maxsize=1024)
def _goto(chain: str) -> Verdict:
    return Verdict(VerdictKind.GOTO, chain)


def _endpoint_rules(
    out: _Out, chain: str, eps: list[Endpoint], names: Mapping[str, tuple[str, str | None]]
) -> None:
    """Affinity checks, then a random cascade: rule i picks endpoint i with 1/(n-i)."""
    for e in eps:
        aff = names[e.address][1]
        if aff is not None:
            out.rule(chain, ir.InSet((Field.IP_SADDR,), aff), _goto(names[e.address][0]))
    n = len(eps)
    for i, e in enumerate(eps):
        target = _goto(names[e.address][0])
        if i < n - 1:
            out.rule(chain, ir.Random(n - i, 0), target)
        else:
            out.rule(chain, target)


def _port_rules(
    svc: Service,
    port: ServicePort,
    all_eps: tuple[Endpoint, ...],
    config: ProxyConfig,
    out: _Out,
) -> None:
    """One port's map elements and data-set elements, its chains and its endpoints' chains."""
    base = port_base(svc, port)
    svc_chain, local_chain = SERVICE_PREFIX + base, LOCAL_PREFIX + base
    ext_chain, fw_chain = EXTERNAL_PREFIX + base, FIREWALL_PREFIX + base
    p = port_policy(svc, port, all_eps, config.node_name)
    internal_chain = local_chain if svc.internal_local else svc_chain
    _port_elements(svc, port, p, internal_chain, ext_chain, fw_chain, out)
    if p.has_internal and (config.masquerade_all or config.cluster_cidr):
        # masquerade-all, or off-cluster sources only (upstream's local traffic detector)
        off = () if config.masquerade_all else (_off_cluster(config.cluster_cidr),)
        proto = _proto(port.protocol.lower())
        vip = (Cmp(Field.IP_DADDR, svc.cluster_ip), proto, Cmp(Field.TH_DPORT, port.port))
        out.rule(internal_chain, *vip, *off, _TO_MARK)
    if p.uses_ext_chain:
        out.chains.setdefault(ext_chain, [])
        if not p.ext_local:
            out.rule(ext_chain, _TO_MARK, comment="masquerade traffic from outside")
        else:
            if config.cluster_cidr:
                pod = Cmp(Field.IP_SADDR, config.cluster_cidr)
                out.rule(ext_chain, pod, _goto(svc_chain), comment="short-circuit pod traffic")
            local_src = Cmp(Field.FIB_SADDR_TYPE, "local")
            out.rule(ext_chain, local_src, _TO_MARK, comment="masquerade local traffic")
            out.rule(ext_chain, local_src, _goto(svc_chain), comment="short-circuit local traffic")
        if p.has_external:
            out.rule(ext_chain, _goto(local_chain if p.ext_local else svc_chain))
    if p.uses_fw:
        sources = list(svc.lb_source_ranges)
        if holds_node_ip(svc.lb_source_ranges, config.node_ips):
            sources.extend(svc.lb_ips)  # the node's own requests to a local LB IP (allowFromNode)
        for src in sources:
            out.rule(fw_chain, Cmp(Field.IP_SADDR, src), _goto(ext_chain))
        out.rule(fw_chain, _DROP, comment="source not in loadBalancerSourceRanges")
    _endpoint_chains(svc, port, p, svc_chain, local_chain, out)


def _port_elements(
    svc: Service,
    port: ServicePort,
    p: PortPolicy,
    internal_chain: str,
    ext_chain: str,
    fw_chain: str,
    out: _Out,
) -> None:
    """The port's addresses in the shard's verdict maps, and in the shared table's sets of
    what is refused: rejected without endpoints, dropped without local ones."""
    proto = port.protocol.lower()
    has_any = p.has_any
    int_flag = NO_ENDPOINT_SERVICES if not has_any else NO_LOCAL_SERVICES
    ext_flag = NO_ENDPOINT_SERVICES if not has_any else NO_LOCAL_EXTERNAL
    np_flag = NO_ENDPOINT_NODEPORTS if not has_any else NO_LOCAL_NODEPORTS
    vip_key: ElementKey = (svc.cluster_ip, proto, port.port)
    if p.has_internal:
        out.element(SERVICE_IPS, vip_key, internal_chain)
    else:
        out.flag(int_flag, vip_key)
    # an address both externalIP and LB IP takes the externalIP's way, as in iptables mode
    dests = [(ip, ext_chain) for ip in svc.external_ips]
    dests += [(ip, fw_chain if p.uses_fw else ext_chain) for ip in svc.lb_ips]
    for ip, chain in dests:
        key: ElementKey = (ip, proto, port.port)
        if has_any:
            out.element(SERVICE_IPS, key, chain)
        if not p.has_external:
            out.flag(ext_flag, key)
    if port.node_port:
        np_key: ElementKey = (proto, port.node_port)
        if has_any:
            out.element(SERVICE_NODEPORTS, np_key, ext_chain)
        if not p.has_external:
            out.flag(np_flag, np_key)


def _endpoint_chains(
    svc: Service, port: ServicePort, p: PortPolicy, svc_chain: str, local_chain: str, out: _Out
) -> None:
    """The balancing service (cluster) and local chains, and a chain per reachable endpoint
    (masquerade hairpin traffic, affinity set update, DNAT)."""
    timeout = svc.affinity_timeout
    names: dict[str, tuple[str, str | None]] = {}
    for e in p.reachable:
        aff = affinity_set(svc, port, e, timeout) if timeout is not None else None
        names[e.address] = (endpoint_chain(svc, port, e), aff)
        if aff is not None:
            out.sets[aff] = ir.SetDef(aff, (Field.IP_SADDR,), timeout=timeout)
    if p.cluster:
        _endpoint_rules(out, svc_chain, p.cluster, names)
    if p.uses_local_chain:
        _endpoint_rules(out, local_chain, p.local, names)
    proto = _proto(port.protocol.lower())
    for e in p.reachable:
        chain, aff = names[e.address]
        out.rule(chain, Cmp(Field.IP_SADDR, e.ip), _TO_MARK)
        if aff is not None:
            out.rule(chain, ir.SetUpdate(aff))
        out.rule(chain, proto, ir.Dnat(e.ip, e.port))


@lru_cache(maxsize=16)
def _off_cluster(cidr: str | None) -> Cmp:
    return Cmp(Field.IP_SADDR, str(cidr), negate=True)


def fragment(
    svc: Service, endpoints: tuple[Endpoint, ...], config: ProxyConfig, shards: int = SHARDS
) -> NftFragment:
    """The rules of one Service (all its ports)."""
    out = _Out()
    for port in svc.ports:
        _port_rules(svc, port, endpoints, config, out)
    return NftFragment(
        svc,
        endpoints,
        shard_of(svc.key, shards),
        {c: tuple(rules) for c, rules in out.chains.items()},
        tuple(out.sets.values()),
        out.elements,
        out.shared,
    )


# ---- the static part of the tables -----------------------------------------------------------


def _nodeport_match(config: ProxyConfig) -> tuple[ir.Expr, ...]:
    if nodeport_ips(config) is not None:
        return (ir.InSet((Field.IP_DADDR,), NODEPORT_IPS),)
    local = Cmp(Field.FIB_DADDR_TYPE, "local")
    if config.localhost_nodeports:
        return (local,)
    return (local, Cmp(Field.IP_DADDR, "127.0.0.0/8", negate=True))


def _nodeport_set(config: ProxyConfig) -> tuple[tuple[ir.SetDef, tuple[ir.Element, ...]], ...]:
    ips = nodeport_ips(config)
    if ips is None:
        return ()
    sdef = ir.SetDef(NODEPORT_IPS, (Field.IP_DADDR,), comment="IPs that accept NodePort traffic")
    return ((sdef, tuple(ir.Element((ip,)) for ip in ips)),)


def _jump(chain: str) -> Verdict:
    return Verdict(VerdictKind.JUMP, chain)


@lru_cache(maxsize=8)
def shard_static(
    config: ProxyConfig,
) -> tuple[
    tuple[tuple[ir.Chain, tuple[Rule, ...]], ...],
    tuple[tuple[ir.SetDef, tuple[ir.Element, ...]], ...],
]:
    """The chains and sets every shard table has, whatever its Services."""
    nat = ir.ChainType.NAT
    chains = (
        (
            ir.Chain(NAT_PREROUTING, ir.BaseChain(nat, ir.Hook.PREROUTING, DSTNAT_PRIORITY)),
            (Rule((_jump(SERVICES),)),),
        ),
        (
            ir.Chain(NAT_OUTPUT, ir.BaseChain(nat, ir.Hook.OUTPUT, DSTNAT_PRIORITY)),
            (Rule((_jump(SERVICES),)),),
        ),
        (
            ir.Chain(SERVICES),
            (
                Rule((ir.VMap(SVC_KEY, SERVICE_IPS),)),
                Rule((*_nodeport_match(config), ir.VMap(PORT_KEY, SERVICE_NODEPORTS))),
            ),
        ),
        (ir.Chain(MARK_MASQ), (Rule((ir.MarkOr(1 << config.masquerade_bit),)),)),
    )
    sets = (
        ir.SetDef(
            SERVICE_IPS, SVC_KEY, verdict_map=True, comment="ClusterIP, ExternalIP and LB IP"
        ),
        ir.SetDef(SERVICE_NODEPORTS, PORT_KEY, verdict_map=True, comment="NodePort traffic"),
    )
    return chains, (*((s, ()) for s in sets), *_nodeport_set(config))


SHARED_SETS: tuple[ir.SetDef, ...] = (
    ir.SetDef(NO_ENDPOINT_SERVICES, SVC_KEY, comment="Service IPs with no endpoints: reject"),
    ir.SetDef(NO_ENDPOINT_NODEPORTS, PORT_KEY, comment="NodePorts with no endpoints: reject"),
    ir.SetDef(NO_LOCAL_SERVICES, SVC_KEY, comment="ClusterIPs without local endpoints: drop"),
    ir.SetDef(NO_LOCAL_EXTERNAL, SVC_KEY, comment="external IPs without local endpoints: drop"),
    ir.SetDef(NO_LOCAL_NODEPORTS, PORT_KEY, comment="NodePorts without local endpoints: drop"),
)


@lru_cache(maxsize=8)
def shared_static(
    config: ProxyConfig,
) -> tuple[
    tuple[tuple[ir.Chain, tuple[Rule, ...]], ...],
    tuple[tuple[ir.SetDef, tuple[ir.Element, ...]], ...],
]:
    """The shared table's chains (all static) and its non-Service sets; the Service sets
    (SHARED_SETS) come after these."""
    bit = 1 << config.masquerade_bit
    filt, nat = ir.ChainType.FILTER, ir.ChainType.NAT

    def base(name: str, hook: ir.Hook, priority: int = FILTER_PRIORITY) -> ir.Chain:
        return ir.Chain(name, ir.BaseChain(filt, hook, priority))

    def check(fields: tuple[Field, ...], s: str, *verdict: ir.Expr) -> Rule:
        return Rule((ir.InSet(fields, s), *verdict))

    input_rules = [
        Rule((_CT_NEW, _jump(NODEPORT_CHECK))),
        Rule((_CT_NEW, _jump(SERVICE_CHECK))),
        Rule((_CT_NEW, _jump(EXTERNAL_CHECK))),
    ]
    if config.localhost_nodeports:  # route_localnet=1 must not open 127/8 to other hosts
        input_rules.append(
            Rule(
                (
                    Cmp(Field.IP_DADDR, "127.0.0.0/8"),
                    Cmp(Field.IP_SADDR, "127.0.0.0/8", negate=True),
                    _CT_NEW,
                    _DROP,
                ),
                "block incoming localnet connections",
            )
        )
    np = _nodeport_match(config)
    chains = (
        (base(FILTER_INPUT, ir.Hook.INPUT), tuple(input_rules)),
        (
            base(FILTER_FORWARD, ir.Hook.FORWARD),
            (
                Rule((_CT_NEW, _jump(SERVICE_CHECK))),
                Rule((_CT_NEW, _jump(EXTERNAL_CHECK))),
                Rule((_jump(FORWARD),)),
            ),
        ),
        (
            base(FILTER_OUTPUT, ir.Hook.OUTPUT, OUTPUT_FILTER_PRIORITY),
            (Rule((_CT_NEW, _jump(SERVICE_CHECK))),),
        ),
        (
            ir.Chain(NAT_POSTROUTING, ir.BaseChain(nat, ir.Hook.POSTROUTING, SRCNAT_PRIORITY)),
            (Rule((_jump(MASQUERADING),)),),
        ),
        (
            ir.Chain(SERVICE_CHECK),
            (
                check(SVC_KEY, NO_ENDPOINT_SERVICES, ir.Reject()),
                check(SVC_KEY, NO_LOCAL_SERVICES, _DROP),
            ),
        ),
        # external destinations only after prerouting: local traffic to them is DNATed
        # (short-circuited) before it could match here
        (ir.Chain(EXTERNAL_CHECK), (check(SVC_KEY, NO_LOCAL_EXTERNAL, _DROP),)),
        (
            ir.Chain(NODEPORT_CHECK),
            (
                Rule((*np, ir.InSet(PORT_KEY, NO_ENDPOINT_NODEPORTS), ir.Reject())),
                Rule((*np, ir.InSet(PORT_KEY, NO_LOCAL_NODEPORTS), _DROP)),
            ),
        ),
        (
            ir.Chain(FORWARD),
            (
                Rule((Cmp(Field.CT_STATE, "invalid"), _DROP)),
                Rule(
                    (ir.MarkTest(bit, True), Verdict(VerdictKind.ACCEPT)),
                    "kubernetes forwarding rules",
                ),
                Rule(
                    (Cmp(Field.CT_STATE, "established,related"), Verdict(VerdictKind.ACCEPT)),
                    "kubernetes forwarding conntrack rule",
                ),
            ),
        ),
        (
            ir.Chain(MASQUERADING),
            (
                Rule((ir.MarkTest(bit, False), Verdict(VerdictKind.RETURN))),
                Rule((ir.MarkXor(bit),)),
                Rule(
                    (ir.Masquerade(fully_random=True),), "kubernetes service traffic requiring SNAT"
                ),
            ),
        ),
    )
    return chains, _nodeport_set(config)


# ---- the rule set --------------------------------------------------------------------------

_serials = itertools.count(1)
MAX_ANCESTORS = 8
MAX_DELTA = 2000

# Claims: who contributes each element, so that two Services naming the same key (e.g. one
# externalIP:port on both, maybe in different shards) never make a batch fail and never both
# DNAT: the first Service (sorted) owns the key. Spread over CLAIM_BUCKETS dicts so that a
# build copies only the buckets it changes.
Claims = tuple[Mapping[Claim, tuple[ServiceKey, ...]], ...]
CLAIM_BUCKETS = 64
SHARD_MAPS = frozenset((SERVICE_IPS, SERVICE_NODEPORTS))  # per-shard; other claims: shared


def claim_bucket(claim: Claim) -> int:
    return hash(claim) % CLAIM_BUCKETS


def claims_of(f: NftFragment) -> Iterator[Claim]:
    """Every element key a fragment contributes (shard maps, then shared sets)."""
    yield from f.elements
    yield from f.shared_elements


@dataclass(frozen=True, eq=False)
class NftRuleSet:
    """The desired nftables state. `tables()` assembles ir.Table data on demand (O(Services));
    partial batches never need it."""

    config: ProxyConfig
    shards: int
    fragments: Mapping[ServiceKey, NftFragment]
    claims: Claims
    service_rules: int = 0  # rules in all fragments' chains
    # serial of an earlier NftRuleSet this one was patched from -> Services changed since then
    ancestors: Mapping[int, frozenset[ServiceKey]] = field(default_factory=dict)
    serial: int = field(default_factory=lambda: next(_serials))
    _cache: dict[str, tuple[ir.Table, ...]] = field(default_factory=dict, repr=False)

    def table_names(self) -> tuple[str, ...]:
        return (SHARED_TABLE, *(shard_table(i) for i in range(self.shards)))

    def changed_since(self, other: NftRuleSet) -> frozenset[ServiceKey] | None:
        """Services that may differ from `other` when this set was patched from it (within the
        last MAX_ANCESTORS builds); None when unknown."""
        if other.serial == self.serial:
            return frozenset()
        return self.ancestors.get(other.serial)

    def winner(self, claim: Claim) -> ServiceKey | None:
        owners = self.claims[claim_bucket(claim)].get(claim)
        return owners[0] if owners else None

    def placed(self, claim: Claim) -> tuple[str, ir.Element] | None:
        """The table and element the kernel should hold for `claim` (its first claimant's)."""
        key = self.winner(claim)
        if key is None:
            return None
        f = self.fragments[key]
        if claim[0] in SHARD_MAPS:
            return shard_table(f.shard), f.elements[claim]
        return SHARED_TABLE, f.shared_elements[claim]

    def tables(self) -> tuple[ir.Table, ...]:
        """The shared table, then every shard table (cached)."""
        cached = self._cache.get("tables")
        if cached is None:
            with no_gc():
                cached = self._cache["tables"] = self._assemble()
        return cached

    def rule_count(self) -> int:
        """Rules in all tables (without assembling them)."""
        shard_chains = shard_static(self.config)[0]
        fixed = sum(len(r) for _c, r in shared_static(self.config)[0])
        return fixed + self.shards * sum(len(r) for _c, r in shard_chains) + self.service_rules

    def _assemble(self) -> tuple[ir.Table, ...]:
        n = self.shards
        by_shard: list[list[NftFragment]] = [[] for _ in range(n)]
        for key in sorted(self.fragments):
            f = self.fragments[key]
            by_shard[f.shard].append(f)
        shared: dict[str, list[ir.Element]] = {s.name: [] for s in SHARED_SETS}
        out: list[ir.Table] = []
        static_chains, static_sets = shard_static(self.config)
        for i, frags in enumerate(by_shard):
            chains = list(static_chains)
            maps: dict[str, list[ir.Element]] = {SERVICE_IPS: [], SERVICE_NODEPORTS: []}
            extra_sets: list[tuple[ir.SetDef, tuple[ir.Element, ...]]] = []
            for f in frags:
                key = f.service.key
                chains.extend((ir.Chain(c), rules) for c, rules in f.chains.items())
                extra_sets.extend((s, ()) for s in f.sets)
                for claim, e in f.elements.items():
                    if self.winner(claim) == key:
                        maps[claim[0]].append(e)
                for claim, e in f.shared_elements.items():
                    if self.winner(claim) == key:
                        shared[claim[0]].append(e)
            sets = [(s, tuple(maps.get(s.name, elems))) for s, elems in static_sets]
            out.append(ir.Table(shard_table(i), tuple(chains), (*sets, *extra_sets)))
        chains_s, sets_s = shared_static(self.config)
        data = tuple((s, tuple(shared[s.name])) for s in SHARED_SETS)
        return (ir.Table(SHARED_TABLE, chains_s, (*sets_s, *data)), *out)


def build(
    state: ClusterState,
    config: ProxyConfig,
    *,
    previous: NftRuleSet | None = None,
    changed: Collection[ServiceKey] | None = None,
    shards: int = SHARDS,
) -> NftRuleSet:
    """The desired nftables state. With `previous` (same config and shards), fragments of
    unchanged Services are reused; with `changed` too, only those keys are looked at (every
    other Service is assumed unchanged), which keeps a one-Service change O(changed)."""
    if shards < 1 or shards > 100:
        raise ValueError(f"nftables proxy: shards must be 1..100, got {shards}")
    services, endpoints = state.services, state.endpoints
    empty: tuple[Endpoint, ...] = ()
    if previous is None or previous.config != config or previous.shards != shards:
        with no_gc():
            return _full_build(state, config, shards)
    old = previous.fragments
    if changed is None:
        changed = changed_services(state, old)
    frags = dict(old)
    new_claims = list(previous.claims)
    copies: dict[int, dict[Claim, tuple[ServiceKey, ...]]] = {}

    def bucket(b: int) -> dict[Claim, tuple[ServiceKey, ...]]:
        """Bucket b of the new claims, copied on first write (the old set stays intact)."""
        d = copies.get(b)
        if d is None:
            d = copies[b] = dict(new_claims[b])
            new_claims[b] = d
        return d

    total = previous.service_rules
    for key in set(changed):
        f_old = old.get(key)
        current = services.get(key)
        f_new = (
            fragment(current, tuple(endpoints.get(key, empty)), config, shards)
            if current is not None
            else None
        )
        if f_old is not None:
            total -= _rules_in(f_old)
            for c in claims_of(f_old):
                d = bucket(claim_bucket(c))
                rest = tuple(k for k in d.get(c, ()) if k != key)
                if rest:
                    d[c] = rest
                else:
                    d.pop(c, None)
        if f_new is None:
            frags.pop(key, None)
            continue
        frags[key] = f_new
        total += _rules_in(f_new)
        for c in claims_of(f_new):
            d = bucket(claim_bucket(c))
            d[c] = tuple(sorted((*d.get(c, ()), key)))
    delta = frozenset(changed)
    ancestors: dict[int, frozenset[ServiceKey]] = {previous.serial: delta}
    for serial, keys in list(previous.ancestors.items())[: MAX_ANCESTORS - 1]:
        if len(keys) + len(delta) <= MAX_DELTA:
            ancestors[serial] = keys | delta
    return NftRuleSet(config, shards, frags, tuple(new_claims), total, ancestors)


def _full_build(state: ClusterState, config: ProxyConfig, shards: int) -> NftRuleSet:
    services, endpoints = state.services, state.endpoints
    empty: tuple[Endpoint, ...] = ()
    frags = {
        k: fragment(services[k], tuple(endpoints.get(k, empty)), config, shards) for k in services
    }
    buckets: list[dict[Claim, list[ServiceKey]]] = [{} for _ in range(CLAIM_BUCKETS)]
    for k in sorted(frags):
        for c in claims_of(frags[k]):
            buckets[claim_bucket(c)].setdefault(c, []).append(k)
    claims = tuple({c: tuple(v) for c, v in b.items()} for b in buckets)
    total = sum(_rules_in(f) for f in frags.values())
    return NftRuleSet(config, shards, frags, claims, total)


def _rules_in(f: NftFragment) -> int:
    return sum(len(rules) for rules in f.chains.values())


__all__ = [
    "SHARDS",
    "SHARED_TABLE",
    "NftFragment",
    "NftRuleSet",
    "build",
    "fragment",
    "shard_of",
    "shard_table",
]
