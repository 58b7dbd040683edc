"""`net explain svc NS/NAME` in nftables mode: the Explanation (net.proxy.views) read from the
applied tables (ir.Table data) by tracing each frontend, so no chain naming is
assumed. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from net.nft import ir
from net.proxy.conntrack import ConntrackEntry
from net.proxy.model import ClusterState, Endpoint, ServiceKey
from net.proxy.nftables.trace import Tracer
from net.proxy.policy import port_endpoints
from net.proxy.views import EndpointView, Explanation, Frontend, PortView, port_conntrack

CLIENT = "203.0.113.1"
"""The source the frontends are traced from: off the node and off the cluster (TEST-NET-3)."""

ChainKey = tuple[str, str]  # (table, chain)


class _Graph:
    """Which chains each chain goes to (`goto` in its rules and its verdict maps' elements) and
    which endpoints (ip:port) each chain DNATs to. A Service's chains lead to each other by
    goto; a `jump` goes to a helper shared by many (mark-for-masquerade), not followed.
    A table is read when first asked about (a Service's chains are all in its shard)."""

    def __init__(self, tables: Sequence[ir.Table]):
        self.tables = {t.name: t for t in tables}
        self.targets: dict[ChainKey, list[ChainKey]] = {}
        self.dnats: dict[ChainKey, set[str]] = {}
        self.entered: set[ChainKey] = set()  # every goto target
        self.read: set[str] = set()

    def _read(self, name: str) -> None:
        if name in self.read:
            return
        self.read.add(name)
        t = self.tables.get(name)
        if t is None:
            return
        maps = {s.name: elements for s, elements in t.sets if s.verdict_map}
        for chain, rules in t.chains:
            key = (t.name, chain.name)
            targets = self.targets.setdefault(key, [])
            for rule in rules:
                for e in rule.exprs:
                    verdicts: list[ir.Verdict | None] = []
                    if isinstance(e, ir.Verdict):
                        verdicts.append(e)
                    elif isinstance(e, ir.VMap):
                        verdicts.extend(el.verdict for el in maps.get(e.map, ()))
                    elif isinstance(e, ir.Dnat) and e.port is not None:
                        self.dnats.setdefault(key, set()).add(f"{e.addr}:{e.port}")
                    targets.extend(
                        (t.name, v.chain)
                        for v in verdicts
                        if v is not None and v.chain and v.kind is ir.VerdictKind.GOTO
                    )
            self.entered.update(targets)

    def is_entered(self, key: ChainKey) -> bool:
        """Is chain `key` the target of some goto?"""
        self._read(key[0])
        return key in self.entered

    def reachable(self, starts: Sequence[ChainKey]) -> list[ChainKey]:
        """`starts` and every chain reachable from them, breadth first."""
        seen = dict.fromkeys(starts)
        queue = list(seen)
        while queue:
            key = queue.pop(0)
            self._read(key[0])
            for target in self.targets.get(key, ()):
                if target not in seen:
                    seen[target] = None
                    queue.append(target)
        return list(seen)


def explain_tables(
    state: ClusterState,
    tables: Sequence[ir.Table],
    key: ServiceKey,
    *,
    node_name: str = "",
    node_ips: Collection[str] = (),
    conntrack: Sequence[ConntrackEntry] = (),
) -> Explanation:
    """Service `key` of `state` as the applied `tables` serve it: each frontend's first chain
    (or the filter verdict that refuses it), the chains reachable from those, and for each
    endpoint the chain that DNATs to it and the chains that balance to that one."""
    svc = state.services.get(key)
    if svc is None:
        return Explanation(key, False)
    ips = tuple(node_ips)
    tracer = Tracer(tables, ips)
    graph = _Graph(tables)
    endpoints = state.endpoints.get(key, ())
    ports: list[PortView] = []
    matched: list[ConntrackEntry] = []
    for port in svc.ports:
        proto = port.protocol.lower()
        port_eps = port_endpoints(port, endpoints)
        addresses = [("cluster IP", svc.cluster_ip)]
        addresses += [("external IP", ip) for ip in svc.external_ips]
        addresses += [("loadbalancer IP", ip) for ip in svc.lb_ips]
        targets = [(kind, f"{ip}:{port.port}", ip, port.port) for kind, ip in addresses]
        if port.node_port:
            node_ip = ips[0] if ips else "127.0.0.1"
            targets.append(("NodePort", f"*:{port.node_port}", node_ip, port.node_port))
        frontends: list[Frontend] = []
        starts: list[ChainKey] = []
        for kind, address, ip, p in targets:
            frontend, first = _frontend(tracer, graph, kind, address, ip, p, proto, port_eps)
            frontends.append(frontend)
            if first is not None:
                starts.append(first)
        reachable = graph.reachable(starts)
        views = [_endpoint(e, reachable, graph, node_name) for e in port_eps]
        ports.append(
            PortView(
                port.name,
                port.protocol,
                port.port,
                port.node_port,
                tuple(frontends),
                tuple(chain for _table, chain in reachable),
                tuple(views),
            )
        )
        found = port_conntrack(svc, port, conntrack, ips)
        matched.extend(c for c in found if c not in matched)
    return Explanation.of(key, svc, ports, matched)


def _frontend(
    tracer: Tracer,
    graph: _Graph,
    kind: str,
    address: str,
    ip: str,
    port: int,
    proto: str,
    endpoints: Sequence[Endpoint],
) -> tuple[Frontend, ChainKey | None]:
    """The frontend as a traced packet from CLIENT meets it; its first chain is the first one
    the packet enters by goto (a map's element), None when no branch reaches an endpoint."""
    try:
        t = tracer.trace(src=CLIENT, dst=ip, port=port, proto=proto)
    except ValueError:  # not an IPv4 address: nothing to trace
        return Frontend(kind, address, None), None
    first: ChainKey | None = None
    for b in t.branches:
        if b.outcome != "dnat":
            continue
        first = next(
            ((h.table, h.chain) for h in b.hits if graph.is_entered((h.table, h.chain))), None
        )
        if first is not None:
            break
    verdict = ""
    refused = next((b.outcome for b in t.branches if b.outcome in ("reject", "drop")), None)
    if refused is not None:
        usable = any(e.ready or (e.serving and e.terminating) for e in endpoints)
        verdict = f"{refused.upper()} ({'no local endpoints' if usable else 'no endpoints'})"
    return Frontend(kind, address, first[1] if first else None, verdict), first


def _endpoint(
    e: Endpoint, reachable: Sequence[ChainKey], graph: _Graph, node_name: str
) -> EndpointView:
    chain = next((c for c in reachable if e.address in graph.dnats.get(c, ())), None)
    used_by = (
        tuple(c[1] for c in reachable if chain in graph.targets.get(c, ()))
        if chain is not None
        else ()
    )
    return EndpointView(
        e.address,
        e.ready,
        e.serving,
        e.terminating,
        bool(node_name) and e.node_name == node_name,
        e.node_name,
        chain[1] if chain else None,
        used_by,
    )


__all__ = ["CLIENT", "explain_tables"]
