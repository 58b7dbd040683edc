"""`net trace` in iptables mode: walk the rule model as the kernel would for one packet.
Parses our own rule lines, follows nat then filter chains, and reports every branch's outcome.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

from net.proxy.iptables.rules import (
    EXTERNAL_SERVICES,
    FILTER,
    FORWARD,
    NAT,
    NODEPORTS,
    PROXY_FIREWALL,
    SERVICES,
    RuleSet,
)
from net.proxy.views import Branch, Hit, Packet, TraceResult

Net = ipaddress.IPv4Network
TERMINAL = ("DNAT", "REJECT", "DROP", "ACCEPT")


@dataclass(frozen=True)
class Rule:
    """The parts of one rule line that the walker understands."""

    text: str
    comment: str = ""
    proto: str | None = None
    src: tuple[Net, bool] | None = None  # (network, negated)
    dst: tuple[Net, bool] | None = None
    dport: int | None = None
    src_local: bool | None = None  # addrtype --src-type LOCAL (False when negated)
    dst_local: bool | None = None
    probability: float | None = None
    recent_check: tuple[str, int] | None = None  # (list name, seconds)
    recent_set: str | None = None
    mark: tuple[int, int, bool] | None = None  # (value, mask, negated)
    ctstate: tuple[frozenset[str], bool] | None = None
    target: str = ""
    target_args: tuple[str, ...] = ()


@lru_cache(maxsize=200000)
def parse_rule(text: str) -> Rule:
    """A rule line (after "-A CHAIN ") as a Rule; unknown options are ignored."""
    tokens = shlex.split(text)
    fields: dict[str, object] = {}
    neg = False
    i = 0

    def arg() -> str:
        nonlocal i
        i += 1
        return tokens[i] if i < len(tokens) else ""

    recent_name = ""
    recent_seconds = 0
    recent_mode = ""
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            neg = True
            i += 1
            continue
        if tok == "-j":
            fields["target"] = arg()
            fields["target_args"] = tuple(tokens[i + 1 :])
            break
        if tok == "--comment":
            fields["comment"] = arg()
        elif tok == "-p":
            fields["proto"] = arg().lower()
        elif tok in ("-s", "-d"):
            net = ipaddress.IPv4Network(arg(), strict=False)
            fields["src" if tok == "-s" else "dst"] = (net, neg)
        elif tok == "--dport":
            fields["dport"] = int(arg())
        elif tok in ("--src-type", "--dst-type"):
            fields["src_local" if tok == "--src-type" else "dst_local"] = (arg() == "LOCAL") != neg
        elif tok == "--probability":
            fields["probability"] = float(arg())
        elif tok == "--name":
            recent_name = arg()
        elif tok == "--seconds":
            recent_seconds = int(arg())
        elif tok in ("--rcheck", "--set"):
            recent_mode = tok
        elif tok == "--mark":
            value, _, mask = arg().partition("/")
            fields["mark"] = (int(value, 0), int(mask or "0xffffffff", 0), neg)
        elif tok == "--ctstate":
            fields["ctstate"] = (frozenset(arg().split(",")), neg)
        neg = False
        i += 1
    if recent_mode == "--rcheck":
        fields["recent_check"] = (recent_name, recent_seconds)
    elif recent_mode == "--set":
        fields["recent_set"] = recent_name
    return Rule(text=text, **fields)  # type: ignore[arg-type]


@dataclass
class _State:
    pkt: Packet
    prob: float = 1.0
    hits: list[Hit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcome: str | None = None
    endpoint: str | None = None

    def fork(self, prob: float) -> _State:
        return _State(self.pkt, prob, list(self.hits), list(self.notes), self.outcome)


class _Walker:
    def __init__(self, tables: Mapping[str, Mapping[str, tuple[str, ...]]], local: list[Net]):
        self.tables = tables
        self.local = local

    def is_local(self, ip: str) -> bool:
        addr = ipaddress.IPv4Address(ip)
        return any(addr in n for n in self.local)

    def matches(self, r: Rule, p: Packet) -> bool:
        if r.proto is not None and r.proto != p.proto:
            return False
        for spec, ip in ((r.src, p.src), (r.dst, p.dst)):
            if spec is not None and (ipaddress.IPv4Address(ip) in spec[0]) == spec[1]:
                return False
        if r.dport is not None and r.dport != p.port:
            return False
        if r.src_local is not None and self.is_local(p.src) != r.src_local:
            return False
        if r.dst_local is not None and self.is_local(p.dst) != r.dst_local:
            return False
        if r.mark is not None:
            value, mask, neg = r.mark
            if ((p.mark & mask) == value) == neg:
                return False
        if r.ctstate is not None:  # a traced packet is always a NEW connection
            states, neg = r.ctstate
            if ("NEW" in states) == neg:
                return False
        return True

    def run(self, table: str, chain: str, st: _State, depth: int = 0) -> list[_State]:
        """Every state leaving `chain`: terminal ones have an outcome; the others returned."""
        rules = self.tables.get(table, {}).get(chain, ())
        done: list[_State] = []
        pending: list[tuple[int, _State]] = [(0, st)]
        while pending:
            i, s = pending.pop(0)
            while i < len(rules):
                text = rules[i]
                i += 1
                r = parse_rule(text)
                if not self.matches(r, s.pkt):
                    continue
                if r.recent_check is not None:
                    name, secs = r.recent_check
                    s.notes.append(
                        f"session affinity: a client seen by {name} in the last {secs}s "
                        f"goes straight to {r.target} (this trace assumes a new client)"
                    )
                    continue
                if r.probability is not None:
                    pending.insert(0, (i, s.fork(s.prob * (1 - r.probability))))
                    s.prob *= r.probability
                s.hits.append(Hit(table, chain, text))
                if r.recent_set:
                    s.notes.append(f"records the client in recent list {r.recent_set}")
                target = r.target
                if target == "MARK":
                    s.pkt = _mark(s.pkt, r.target_args)
                elif target == "DNAT":
                    s.outcome, s.endpoint = "dnat", r.target_args[-1]
                elif target in ("REJECT", "DROP"):
                    s.outcome = target.lower()
                elif target == "ACCEPT":
                    s.outcome = "accept"
                elif target == "RETURN":
                    break
                elif target and target in self.tables.get(table, {}) and depth < 16:
                    subs = self.run(table, target, s, depth + 1)
                    done.extend(sub for sub in subs if sub.outcome is not None)
                    pending[0:0] = [(i, sub) for sub in subs if sub.outcome is None]
                    s = _State(s.pkt)  # consumed
                    s.outcome = "consumed"
                if s.outcome is not None:
                    break
            if s.outcome != "consumed":
                done.append(s)
        return done


def _mark(p: Packet, args: tuple[str, ...]) -> Packet:
    op, value = (args[0], args[1]) if len(args) >= 2 else ("", "0")
    v, _, mask = value.partition("/")
    n = int(v, 0)
    if op == "--or-mark":
        return replace(p, mark=p.mark | n)
    if op == "--xor-mark":
        return replace(p, mark=p.mark ^ n)
    if op == "--set-xmark":
        m = int(mask or "0xffffffff", 0)
        return replace(p, mark=(p.mark & ~m) ^ n)
    return p


def trace(
    ruleset: RuleSet,
    *,
    src: str,
    dst: str,
    port: int,
    proto: str = "tcp",
    local_addresses: Collection[str] | None = None,
) -> TraceResult:
    """Walk nat (PREROUTING or OUTPUT -> KUBE-SERVICES ...), then the filter chains the packet
    would cross after NAT, then KUBE-POSTROUTING. `local_addresses` are the node's own
    addresses (addrtype LOCAL); by default the config's node IPs plus 127.0.0.0/8."""
    if local_addresses is None:
        local_addresses = ruleset.config.node_ips if ruleset.config else ()
    local = [ipaddress.IPv4Network("127.0.0.0/8")]
    local.extend(ipaddress.IPv4Network(a, strict=False) for a in local_addresses)
    walker = _Walker(ruleset.tables, local)
    pkt = Packet(
        str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)), port, proto.lower()
    )
    from_local = walker.is_local(pkt.src)
    entry = "OUTPUT" if from_local else "PREROUTING"
    notes: list[str] = []
    start = _State(pkt)
    start.hits.append(Hit(NAT, entry, f"-j {SERVICES}"))
    branches: list[Branch] = []
    for s in walker.run(NAT, SERVICES, start):
        if s.outcome == "dnat" and s.endpoint:
            ip, _, eport = s.endpoint.rpartition(":")
            s.pkt = replace(s.pkt, dst=ip, port=int(eport))
        nat_outcome, endpoint = s.outcome, s.endpoint
        s.outcome = None
        hooks: list[tuple[str, str]] = []
        if from_local:
            hooks += [("OUTPUT", PROXY_FIREWALL), ("OUTPUT", SERVICES)]
        if walker.is_local(s.pkt.dst):
            hooks += [("INPUT", c) for c in (PROXY_FIREWALL, NODEPORTS, EXTERNAL_SERVICES)]
        elif not from_local:
            hooks += [("FORWARD", c) for c in (PROXY_FIREWALL, FORWARD, SERVICES)]
            hooks.append(("FORWARD", EXTERNAL_SERVICES))
        states = [s]
        for hook, chain in hooks:
            nxt: list[_State] = []
            for st in states:
                if st.outcome is not None:
                    nxt.append(st)
                    continue
                st.hits.append(Hit(FILTER, hook, f"-j {chain}"))
                hits_before = len(st.hits)
                for out in walker.run(FILTER, chain, st):
                    if out.outcome is None and len(out.hits) == hits_before:
                        out.hits.pop()  # nothing matched in that chain: keep the trace short
                    nxt.append(out)
            states = nxt
        for st in states:
            masq = bool(st.pkt.mark & _masq_bit(ruleset))
            if st.outcome in ("reject", "drop"):
                outcome = st.outcome
            elif nat_outcome == "dnat":
                outcome = "dnat"
            else:
                outcome = "no-match"
            if masq and outcome == "dnat":
                st.hits.append(Hit(NAT, "KUBE-POSTROUTING", "-j MASQUERADE --random-fully"))
            branches.append(
                Branch(
                    st.prob,
                    tuple(st.hits),
                    outcome,
                    endpoint if outcome == "dnat" else None,
                    masq and outcome == "dnat",
                    tuple(dict.fromkeys(st.notes)),
                )
            )
    if not branches:
        notes.append("no path: the rule model is empty")
    return TraceResult(pkt, entry, tuple(branches), tuple(notes))


def _masq_bit(ruleset: RuleSet) -> int:
    return 1 << (ruleset.config.masquerade_bit if ruleset.config else 14)
