"""`net explain svc NS/NAME` in iptables mode: one Service's frontends -> chains -> endpoints read
from the applied RuleSet, plus its conntrack entries. Pure: plain data in, an Explanation out.
"""

from __future__ import annotations

from collections.abc import Sequence

from net.proxy.conntrack import ConntrackEntry
from net.proxy.iptables.rules import NAT, RuleSet, chain_hash
from net.proxy.model import ClusterState, Service, ServiceKey, ServicePort, port_name_string
from net.proxy.policy import port_endpoints
from net.proxy.views import EndpointView, Explanation, Frontend, PortView, port_conntrack


def explain(
    state: ClusterState,
    ruleset: RuleSet,
    key: ServiceKey,
    conntrack: Sequence[ConntrackEntry] = (),
) -> Explanation:
    svc = state.services.get(key)
    if svc is None:
        return Explanation(key, False)
    node_ips = ruleset.config.node_ips if ruleset.config else ()
    ports: list[PortView] = []
    matched: list[ConntrackEntry] = []
    for port in svc.ports:
        ports.append(_port_view(state, ruleset, svc, port))
        found = port_conntrack(svc, port, conntrack, node_ips)
        matched.extend(c for c in found if c not in matched)
    return Explanation.of(key, svc, ports, matched)


def _port_view(state: ClusterState, ruleset: RuleSet, svc: Service, port: ServicePort) -> PortView:
    nat = ruleset.tables.get(NAT, {})
    pn = port_name_string(svc, port)
    proto = port.protocol.lower()
    h = chain_hash(pn + proto)
    chains = tuple(c for c in (f"KUBE-{p}-{h}" for p in ("SVC", "SVL", "EXT", "FW")) if c in nat)
    balancers = {c: set(nat.get(c, ())) for c in chains if c.startswith(("KUBE-SVC-", "KUBE-SVL-"))}
    node = ruleset.config.node_name if ruleset.config else ""
    eps: list[EndpointView] = []
    for e in port_endpoints(port, state.endpoints.get(svc.key, ())):
        sep = "KUBE-SEP-" + chain_hash(pn + proto + e.address)
        used = tuple(
            c for c, lines in balancers.items() if any(line.endswith(f"-j {sep}") for line in lines)
        )
        eps.append(
            EndpointView(
                e.address,
                e.ready,
                e.serving,
                e.terminating,
                e.node_name == node,
                e.node_name,
                sep if sep in nat else None,
                used,
            )
        )
    frontends = _frontends(ruleset, svc, port)
    return PortView(
        port.name, port.protocol, port.port, port.node_port, frontends, chains, tuple(eps)
    )


def _frontends(ruleset: RuleSet, svc: Service, port: ServicePort) -> tuple[Frontend, ...]:
    """Each address of the port: the Service chain its KUBE-SERVICES (or KUBE-NODEPORTS) line
    jumps to, or the filter verdict that refuses it."""
    filter_lines = [
        line
        for chains in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES")
        for line in ruleset.tables.get("filter", {}).get(chains, ())
    ]
    frag = ruleset.fragments.get(svc.key)
    jump_lines = [line for _t, _c, line in frag.jumps] if frag else []
    proto = port.protocol.lower()
    addresses = [("cluster IP", svc.cluster_ip)]
    addresses += [("external IP", ip) for ip in svc.external_ips]
    addresses += [("loadbalancer IP", ip) for ip in svc.lb_ips]
    out = [
        _frontend(
            kind,
            f"{ip}:{port.port}",
            f"-d {ip} --dport {port.port} ",
            proto,
            jump_lines,
            filter_lines,
        )
        for kind, ip in addresses
    ]
    if port.node_port:
        np = port.node_port
        out.append(
            _frontend("NodePort", f"*:{np}", f"--dport {np} ", proto, jump_lines, filter_lines)
        )
    return tuple(out)


def _frontend(
    kind: str, address: str, match: str, proto: str, jumps: list[str], filters: list[str]
) -> Frontend:
    needle = f"-m {proto} -p {proto} {match}"
    chain = next(
        (
            line.rsplit("-j ", 1)[1]
            for line in jumps
            if needle in line and "KUBE-" in line.rsplit("-j ", 1)[1]
        ),
        None,
    )
    verdict = ""
    for line in filters:
        if needle in line and (kind != "NodePort" or "--dst-type LOCAL" in line):
            target = line.rsplit("-j ", 1)[1]
            reason = "no local endpoints" if "no local endpoints" in line else "no endpoints"
            verdict = f"{target} ({reason})"
            break
    return Frontend(kind, address, chain, verdict)
