"""`net explain svc NS/NAME`: one Service's frontends -> chains -> endpoints, plus its conntrack
entries (parsed by net.proxy.conntrack). Pure: plain data in, an Explanation out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from net.proxy.conntrack import ConntrackEntry
from net.proxy.iptables.rules import NAT, RuleSet, chain_hash
from net.proxy.model import ClusterState, Service, ServiceKey, port_name_string


@dataclass(frozen=True)
class Frontend:
    kind: str  # "cluster IP", "NodePort", "external IP", "loadbalancer IP"
    address: str  # ip:port, or "*:nodePort" for NodePorts
    chain: str | None  # first chain of ours it jumps to; None when rejected/dropped
    verdict: str = ""  # "REJECT (no endpoints)" etc. when the filter table blocks it


@dataclass(frozen=True)
class EndpointView:
    address: str
    ready: bool
    serving: bool
    terminating: bool
    local: bool
    node: str | None
    chain: str | None  # its KUBE-SEP chain, when programmed
    used_by: tuple[str, ...]  # chains that balance to it (KUBE-SVC-*, KUBE-SVL-*)


@dataclass(frozen=True)
class PortView:
    name: str
    protocol: str
    port: int
    node_port: int
    frontends: tuple[Frontend, ...]
    chains: tuple[str, ...]
    endpoints: tuple[EndpointView, ...]


@dataclass(frozen=True)
class Explanation:
    key: ServiceKey
    found: bool
    type: str = ""
    cluster_ip: str = ""
    affinity: str = "None"
    external_policy: str = "Cluster"
    internal_policy: str = "Cluster"
    ports: tuple[PortView, ...] = ()
    conntrack: tuple[ConntrackEntry, ...] = ()

    @classmethod
    def of(
        cls,
        key: ServiceKey,
        svc: Service,
        ports: Sequence[PortView],
        conntrack: Sequence[ConntrackEntry],
    ) -> Explanation:
        """A found Service's explanation (both modes: the ports' views differ, not this)."""
        return cls(
            key,
            True,
            svc.type,
            svc.cluster_ip,
            f"ClientIP ({svc.affinity_timeout}s)" if svc.affinity_timeout is not None else "None",
            "Local" if svc.external_local else "Cluster",
            "Local" if svc.internal_local else "Cluster",
            tuple(ports),
            tuple(conntrack),
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def text(self) -> str:
        ns, name = self.key
        if not self.found:
            return f"Service {ns}/{name}: not found (or not proxied: headless/ExternalName)\n"
        lines = [
            f"Service {ns}/{name}  type {self.type}  cluster IP {self.cluster_ip}",
            f"  sessionAffinity {self.affinity}  externalTrafficPolicy {self.external_policy}"
            f"  internalTrafficPolicy {self.internal_policy}",
        ]
        for p in self.ports:
            label = p.name or "(unnamed)"
            np = f"  nodePort {p.node_port}" if p.node_port else ""
            lines.append(f"port {label} {p.port}/{p.protocol}{np}")
            for f in p.frontends:
                to = f.chain or "-"
                verdict = f"  [{f.verdict}]" if f.verdict else ""
                lines.append(f"  {f.kind:16} {f.address:22} -> {to}{verdict}")
            lines.append(f"  chains: {' '.join(p.chains) or '(none)'}")
            header = (
                "ENDPOINT",
                "READY",
                "SERVING",
                "TERMINATING",
                "LOCAL",
                "NODE",
                "CHAIN",
                "USED BY",
            )
            rows = [header] + [
                (
                    e.address,
                    _yn(e.ready),
                    _yn(e.serving),
                    _yn(e.terminating),
                    _yn(e.local),
                    e.node or "-",
                    e.chain or "-",
                    ",".join(e.used_by) or "-",
                )
                for e in p.endpoints
            ]
            if not p.endpoints:
                lines.append("  no endpoints")
            else:
                widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
                for r in rows:
                    lines.append(
                        "  "
                        + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                    )
        lines.append(f"conntrack entries: {len(self.conntrack)}")
        lines.extend(f"  {c.text()}" for c in self.conntrack)
        return "\n".join(lines) + "\n"


def _yn(v: bool) -> str:
    return "yes" if v else "no"


def explain(
    state: ClusterState,
    ruleset: RuleSet,
    key: ServiceKey,
    conntrack: Sequence[ConntrackEntry] = (),
) -> Explanation:
    svc = state.services.get(key)
    if svc is None:
        return Explanation(key, False)
    nat = ruleset.tables.get(NAT, {})
    node = ruleset.config.node_name if ruleset.config else ""
    node_ips = set(ruleset.config.node_ips) if ruleset.config else set()
    filter_lines = [
        line
        for chains in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES")
        for line in ruleset.tables.get("filter", {}).get(chains, ())
    ]
    frag = ruleset.fragments.get(key)
    jump_lines = [line for _t, _c, line in frag.jumps] if frag else []
    ports: list[PortView] = []
    matched: list[ConntrackEntry] = []
    for port in svc.ports:
        pn = port_name_string(svc, port)
        proto = port.protocol.lower()
        h = chain_hash(pn + proto)
        chains = tuple(
            c for c in (f"KUBE-{p}-{h}" for p in ("SVC", "SVL", "EXT", "FW")) if c in nat
        )
        addresses = [("cluster IP", svc.cluster_ip, port.port)]
        addresses += [("external IP", ip, port.port) for ip in svc.external_ips]
        addresses += [("loadbalancer IP", ip, port.port) for ip in svc.lb_ips]
        frontends: list[Frontend] = []
        for kind, ip, p in addresses:
            frontends.append(
                _frontend(
                    kind, f"{ip}:{p}", f"-d {ip} --dport {p} ", proto, jump_lines, filter_lines
                )
            )
        if port.node_port:
            frontends.append(
                _frontend(
                    "NodePort",
                    f"*:{port.node_port}",
                    f"--dport {port.node_port} ",
                    proto,
                    jump_lines,
                    filter_lines,
                )
            )
        balancers = {
            c: set(nat.get(c, ())) for c in chains if c.startswith(("KUBE-SVC-", "KUBE-SVL-"))
        }
        eps: list[EndpointView] = []
        for e in state.endpoints.get(key, ()):
            if e.port_name != port.name or e.protocol != port.protocol:
                continue
            sep = "KUBE-SEP-" + chain_hash(pn + proto + e.address)
            used = tuple(
                c
                for c, lines in balancers.items()
                if any(line.endswith(f"-j {sep}") for line in lines)
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
        ports.append(
            PortView(
                port.name,
                port.protocol,
                port.port,
                port.node_port,
                tuple(frontends),
                chains,
                tuple(eps),
            )
        )
        vips = {ip for _k, ip, _p in addresses}
        for c in conntrack:
            if c.proto != proto or c in matched:
                continue
            if (c.dst in vips and c.dport == port.port) or (
                port.node_port and c.dport == port.node_port and (not node_ips or c.dst in node_ips)
            ):
                matched.append(c)
    return Explanation.of(key, svc, ports, matched)


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
