"""What the debug views show, in every proxy mode: a packet's trace through the applied rules
(`net trace`) and a Service's explanation (`net explain`), as data with their readable text and
JSON. Each mode's trace and explain modules fill these in; nothing here reads rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from net.proxy.conntrack import ConntrackEntry
from net.proxy.model import Service, ServiceKey, ServicePort

# ---- net trace ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    port: int
    proto: str
    mark: int = 0


@dataclass(frozen=True)
class Hit:
    table: str
    chain: str
    rule: str


@dataclass(frozen=True)
class Branch:
    """One way the packet can go: its probability, the rules it hit, and where it ends."""

    probability: float
    hits: tuple[Hit, ...]
    outcome: str  # "dnat", "reject", "drop", "no-match"
    endpoint: str | None = None  # ip:port for dnat
    masquerade: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TraceResult:
    packet: Packet
    entry: str  # the nat hook the packet enters by (PREROUTING or OUTPUT)
    branches: tuple[Branch, ...]
    notes: tuple[str, ...] = ()

    @property
    def outcomes(self) -> dict[str, float]:
        """Outcome ("dnat ip:port", "reject", ...) -> total probability."""
        out: dict[str, float] = {}
        for b in self.branches:
            key = f"dnat {b.endpoint}" if b.outcome == "dnat" else b.outcome
            out[key] = out.get(key, 0.0) + b.probability
        return out

    def text(self) -> str:
        p = self.packet
        lines = [f"{p.proto} {p.src} -> {p.dst}:{p.port} (enters nat {self.entry})"]
        hits = [h for b in self.branches for h in b.hits]
        # iptables names fit 6/28 columns; nftables ones (tables pykube-proxy-NN, chains named
        # after the Service) are longer: widen to the longest so the columns still line up
        tw = max([6, *(len(h.table) for h in hits)])
        cw = max([28, *(len(h.chain) for h in hits)])
        for n, b in enumerate(self.branches, 1):
            end = {
                "dnat": f"DNAT to {b.endpoint}" + (" (masquerade)" if b.masquerade else ""),
                "reject": "REJECT (connection refused)",
                "drop": "DROP",
                "no-match": "no Service rule matched: the packet goes on unchanged",
            }[b.outcome]
            head = f"branch {n}" + (f" (p={b.probability:.4f})" if len(self.branches) > 1 else "")
            lines.append(f"{head}: {end}")
            lines.extend(f"  {h.table:{tw}} {h.chain:{cw}} {h.rule}" for h in b.hits)
            lines.extend(f"  note: {note}" for note in b.notes)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """What /debug/trace answers: the fields, the outcomes and the readable text."""
        data = dataclasses.asdict(self)
        data["outcomes"] = self.outcomes
        data["text"] = self.text()
        return data


# ---- net explain --------------------------------------------------------------------------------


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
        """What /debug/explain answers: the fields and the readable text."""
        data = dataclasses.asdict(self)
        data["text"] = self.text()
        return data

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


def port_conntrack(
    svc: Service,
    port: ServicePort,
    entries: Sequence[ConntrackEntry],
    node_ips: Collection[str],
) -> list[ConntrackEntry]:
    """The conntrack entries of one Service port's frontends: its cluster, external and LB IPs,
    and its NodePort on a node IP (on any address when the node IPs are unknown)."""
    proto = port.protocol.lower()
    vips = {svc.cluster_ip, *svc.external_ips, *svc.lb_ips}
    return [
        c
        for c in entries
        if c.proto == proto
        and (
            (c.dst in vips and c.dport == port.port)
            or (
                port.node_port and c.dport == port.node_port and (not node_ips or c.dst in node_ips)
            )
        )
    ]
