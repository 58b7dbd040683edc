"""`net trace` in nftables mode: walk the proxy's tables (net/nft/ir.py data) as the kernel would
for one packet, through every base chain of each hook it crosses, and report every branch.

The result is net.proxy.views' TraceResult, as in every mode, so the views print them alike.
The traced packet is the first of a new connection (`ct state new`, nat chains apply) with
mark 0 and a client no affinity set has seen yet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import cast

from net.nft import ir
from net.nft import text as nft_text
from net.proxy.views import Branch, Hit, Packet, TraceResult

HOOKS = ("prerouting", "output")
MAX_DEPTH = 16  # the kernel's jump stack limit
PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
# which address a hook's nat chains rewrite: once bound, later nat chains of the hook are skipped
_MANIP = {
    ir.Hook.PREROUTING: "dst",
    ir.Hook.OUTPUT: "dst",
    ir.Hook.INPUT: "src",
    ir.Hook.POSTROUTING: "src",
}


def _rule_text(rule: ir.Rule) -> str:
    """The rule in nft syntax (net/nft/text.py); names and comments the renderer refuses are
    shown as they are, so a trace can still show a rule nft would not load."""
    try:
        return nft_text.rule_text(rule)
    except (ValueError, TypeError):
        parts = [_expr_text(e) for e in rule.exprs]
        if rule.comment is not None:
            parts.append(f'comment "{rule.comment}"')
        return " ".join(parts)


def _expr_text(e: ir.Expr) -> str:
    fields = " . ".join(f.value for f in getattr(e, "fields", ()))
    match e:
        case ir.Verdict():
            return _verdict_text(e)
        case ir.InSet():
            return f"{fields} {'!= ' if e.negate else ''}@{e.set}"
        case ir.VMap():
            return f"{fields} vmap @{e.map}"
        case ir.SetUpdate():
            return f"update @{e.set} {{ {e.field.value} }}"
    try:
        return nft_text.expr_text(e)
    except (ValueError, TypeError):
        return repr(e)


@dataclass
class _State:
    pkt: Packet
    prob: float = 1.0
    hits: list[Hit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: str | None = None  # "accept" (ends a base chain), "drop", "reject"
    endpoint: str | None = None
    masquerade: bool = False
    nat_bound: set[str] = field(default_factory=set)  # "dst" / "src" NAT set up

    def fork(self, prob: float) -> _State:
        return _State(
            self.pkt,
            prob,
            list(self.hits),
            list(self.notes),
            self.verdict,
            self.endpoint,
            self.masquerade,
            set(self.nat_bound),
        )


@dataclass(frozen=True)
class _Base:
    table: str
    chain: str
    type: ir.ChainType
    priority: int
    order: int  # table position, for equal priorities


@dataclass(frozen=True)
class _SetIndex:
    """A set's elements: those with exact values by key, the rest (prefixes, ranges) in order."""

    exact: dict[tuple[object, ...], ir.Element]
    others: tuple[ir.Element, ...]

    @staticmethod
    def build(elements: Sequence[ir.Element]) -> _SetIndex:
        exact: dict[tuple[object, ...], ir.Element] = {}
        others: list[ir.Element] = []
        for e in elements:
            key = tuple(_exact_value(v) for v in e.key)
            if any(k is None for k in key):
                others.append(e)
            else:
                exact.setdefault(key, e)
        return _SetIndex(exact, tuple(others))


@lru_cache(maxsize=65536)
def _exact_value(value: str | int) -> object | None:
    """An element value as _packet_value spells it, or None for a prefix, range or list."""
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    if any(c in text for c in "/-,{"):
        return None
    if text.isdigit():
        return int(text)
    if text in PROTO_NUMBERS:
        return PROTO_NUMBERS[text]
    parts = text.split(".")
    if len(parts) == 4 and all(
        p.isdigit() and len(p) <= 3 and (p == "0" or p[0] != "0") and int(p) < 256 for p in parts
    ):
        return text  # already as str(IPv4Address) spells it
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return text  # a fib type ("local") or a ct state


def _packet_value(f: ir.Field, p: Packet, is_local: Callable[[str], bool]) -> object:
    if f is ir.Field.IP_SADDR:
        return p.src
    if f is ir.Field.IP_DADDR:
        return p.dst
    if f is ir.Field.L4PROTO:
        return _proto_number(p.proto)
    if f is ir.Field.TH_DPORT:
        return p.port
    if f in (ir.Field.FIB_DADDR_TYPE, ir.Field.FIB_SADDR_TYPE):
        addr = p.dst if f is ir.Field.FIB_DADDR_TYPE else p.src
        return _fib_type(addr, is_local(addr))
    return "new"  # CT_STATE


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _network(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text, strict=False)


# (state, True): the chain goes on with its next rule; (state, False): the chain is left
_Outcome = list[tuple[_State, bool]]


class Tracer:
    """Tables indexed once for any number of traces (`explain` traces each frontend).
    `local_addresses` are the node's addresses (`fib ... type local`, besides 127.0.0.0/8)."""

    def __init__(self, tables: Sequence[ir.Table], local_addresses: Collection[str] = ()):
        self.local = [ipaddress.IPv4Network("127.0.0.0/8")]
        self.local.extend(ipaddress.IPv4Network(a, strict=False) for a in local_addresses)
        self.chains: dict[str, dict[str, tuple[ir.Rule, ...]]] = {}
        self.sets: dict[str, dict[str, tuple[ir.SetDef, tuple[ir.Element, ...]]]] = {}
        self.indexes: dict[tuple[str, str], _SetIndex] = {}
        self.bases: dict[ir.Hook, list[_Base]] = {}
        for order, t in enumerate(tables):
            self.chains[t.name] = {c.name: rules for c, rules in t.chains}
            self.sets[t.name] = {s.name: (s, elements) for s, elements in t.sets}
            for c, _rules in t.chains:
                if c.base is not None:
                    self.bases.setdefault(c.base.hook, []).append(
                        _Base(t.name, c.name, c.base.type, c.base.priority, order)
                    )
        for bases in self.bases.values():
            bases.sort(key=lambda b: (b.priority, b.order))

    # ---- matching -------------------------------------------------------------------------
    def is_local(self, ip: str) -> bool:
        addr = ipaddress.IPv4Address(ip)
        return any(addr in n for n in self.local)

    def value_matches(self, f: ir.Field, value: str | int, p: Packet) -> bool:
        """Does packet `p`'s `f` equal `value` (a prefix/range/state list where nft allows)?
        A value nft would not take (a bad address, say) matches nothing."""
        try:
            return self._value_matches(f, value, p)
        except ValueError:
            return False

    def _value_matches(self, f: ir.Field, value: str | int, p: Packet) -> bool:
        if f in (ir.Field.IP_SADDR, ir.Field.IP_DADDR):
            ip = ipaddress.IPv4Address(p.src if f is ir.Field.IP_SADDR else p.dst)
            text = str(value)
            if "-" in text:
                lo, _, hi = text.partition("-")
                return ipaddress.IPv4Address(lo.strip()) <= ip <= ipaddress.IPv4Address(hi.strip())
            return ip in _network(text)
        if f is ir.Field.L4PROTO:
            return _proto_number(value) == _proto_number(p.proto)
        if f is ir.Field.TH_DPORT:
            text = str(value)
            if "-" in text:
                lo, _, hi = text.partition("-")
                return int(lo) <= p.port <= int(hi)
            return int(text) == p.port
        if f in (ir.Field.FIB_DADDR_TYPE, ir.Field.FIB_SADDR_TYPE):
            addr = p.dst if f is ir.Field.FIB_DADDR_TYPE else p.src
            return _fib_type(addr, self.is_local(addr)) in _words(value)
        if f is ir.Field.CT_STATE:
            return "new" in _words(value)
        return False

    def lookup(
        self, table: str, name: str, fields: tuple[ir.Field, ...], s: _State
    ) -> tuple[ir.SetDef, ir.Element] | tuple[ir.SetDef, None] | None:
        """The set's first element matching the packet's `fields` (None: no such set)."""
        found = self.sets.get(table, {}).get(name)
        if found is None:
            s.notes.append(f"set @{name} does not exist in table {table}: nothing matches it")
            return None
        sdef, elements = found
        index = self.indexes.get((table, name))
        if index is None:
            index = self.indexes[(table, name)] = _SetIndex.build(elements)
        key = tuple(_packet_value(f, s.pkt, self.is_local) for f in fields)
        element = index.exact.get(key)
        if element is not None and len(element.key) == len(fields):
            return sdef, element
        for e in index.others:
            if len(e.key) == len(fields) and all(
                self.value_matches(f, v, s.pkt) for f, v in zip(fields, e.key, strict=True)
            ):
                return sdef, e
        return sdef, None

    # ---- walking --------------------------------------------------------------------------
    def run_hook(self, hook: ir.Hook, states: list[_State]) -> list[_State]:
        """Every base chain of `hook` in priority order; drops and rejects stop there."""
        for base in self.bases.get(hook, ()):
            nxt: list[_State] = []
            for s in states:
                if s.verdict in ("drop", "reject") or (
                    base.type is ir.ChainType.NAT and _MANIP.get(hook) in s.nat_bound
                ):
                    nxt.append(s)
                    continue
                for out in self.run_chain(base.table, base.chain, s, 0):
                    if out.verdict == "accept":
                        out.verdict = None  # accepted by this base chain: on to the next one
                    nxt.append(out)
            states = nxt
        return states

    def run_chain(self, table: str, chain: str, s: _State, depth: int) -> list[_State]:
        """Every state leaving `chain`: with a verdict, or returning to the caller (None)."""
        rules = self.chains.get(table, {}).get(chain)
        if rules is None:
            s.notes.append(f"chain {chain} does not exist in table {table}")
            return [s]
        return self.run_rules(table, chain, rules, 0, s, depth)

    def run_rules(
        self,
        table: str,
        chain: str,
        rules: tuple[ir.Rule, ...],
        start: int,
        s: _State,
        depth: int,
    ) -> list[_State]:
        out: list[_State] = []
        later: list[tuple[int, _State]] = []  # the other outcomes of `numgen random` matches
        i = start
        left = False
        while i < len(rules):
            rule = rules[i]
            i += 1
            forks: list[_State] = []
            result = self.run_rule(table, chain, rule, s, depth, forks)
            later.extend((i, f) for f in forks)
            if result is None:
                continue
            for st, goes_on in result:
                if goes_on:
                    out.extend(self.run_rules(table, chain, rules, i, st, depth))
                else:
                    out.append(st)
            left = True
            break
        if not left:
            out.append(s)  # fell off the end: back to the caller (a base chain: policy accept)
        for j, f in later:
            out.extend(self.run_rules(table, chain, rules, j, f, depth))
        return out

    def run_rule(
        self,
        table: str,
        chain: str,
        rule: ir.Rule,
        s: _State,
        depth: int,
        forks: list[_State],
    ) -> _Outcome | None:
        """Evaluate one rule's expressions left to right. None: go on with the next rule."""
        hit: Hit | None = None
        effect = False  # a statement ran: keep the rule's hit even if its jump comes back empty

        def record(extra: str = "") -> None:
            nonlocal hit
            if hit is None:
                hit = Hit(table, chain, _rule_text(rule) + extra)
                s.hits.append(hit)

        for e in rule.exprs:
            match e:
                case ir.Cmp():
                    if self.value_matches(e.field, e.value, s.pkt) == e.negate:
                        return None
                case ir.MarkTest():
                    if ((s.pkt.mark & e.mask) != 0) != e.is_set:
                        return None
                case ir.InSet():
                    found = self.lookup(table, e.set, e.fields, s)
                    if found is None:
                        return None
                    sdef, element = found
                    if sdef.timeout is not None and not e.negate:
                        s.notes.append(
                            f"session affinity: a client seen in the last {sdef.timeout}s "
                            f"(in @{sdef.name}) takes `{_rule_text(rule)}` "
                            "(this trace assumes a new client)"
                        )
                        return None
                    if (element is not None) == e.negate:
                        return None
                case ir.Random():
                    p = 1 / e.mod if e.mod > 0 and 0 <= e.value < e.mod else 0.0
                    if p == 0.0:
                        return None
                    if p < 1.0:
                        forks.append(s.fork(s.prob * (1 - p)))
                        s.prob *= p
                case ir.MarkOr():
                    record()
                    effect = True
                    s.pkt = replace(s.pkt, mark=s.pkt.mark | e.bits)
                case ir.MarkXor():
                    record()
                    effect = True
                    s.pkt = replace(s.pkt, mark=s.pkt.mark ^ e.bits)
                case ir.SetUpdate():
                    record()
                    effect = True
                    s.notes.append(f"records the client in affinity set @{e.set}")
                case ir.Verdict():
                    record()
                    return self.verdict(table, e, s, depth, effect)
                case ir.VMap():
                    found = self.lookup(table, e.map, e.fields, s)
                    if found is None or found[1] is None or found[1].verdict is None:
                        return None
                    element = found[1]
                    verdict = cast(ir.Verdict, element.verdict)
                    key = " . ".join(str(k) for k in element.key)
                    record(f"  [{key} : {_verdict_text(verdict)}]")
                    return self.verdict(table, verdict, s, depth, effect)
                case ir.Dnat():
                    record()
                    if not _is_ipv4(e.addr):
                        s.notes.append(f"dnat to {e.addr!r}: not an IPv4 address, not followed")
                        return [(s, False)]
                    port = e.port if e.port is not None else s.pkt.port
                    s.pkt = replace(s.pkt, dst=e.addr, port=port)
                    s.endpoint = f"{e.addr}:{port}"
                    s.nat_bound.add("dst")
                    s.verdict = "accept"
                    return [(s, False)]
                case ir.Masquerade():
                    record()
                    s.masquerade = True
                    s.nat_bound.add("src")
                    s.verdict = "accept"
                    return [(s, False)]
                case ir.Reject():
                    record()
                    s.verdict = "reject"
                    return [(s, False)]
        return None  # matches only (or nothing but statements): on with the next rule

    def verdict(
        self, table: str, v: ir.Verdict, s: _State, depth: int, effect: bool = False
    ) -> _Outcome:
        """Apply verdict `v` (its rule's hit is the last one in `s.hits`)."""
        if v.kind is ir.VerdictKind.ACCEPT:
            s.verdict = "accept"
            return [(s, False)]
        if v.kind is ir.VerdictKind.DROP:
            s.verdict = "drop"
            return [(s, False)]
        if v.kind is ir.VerdictKind.RETURN or v.chain is None:
            return [(s, False)]
        if depth + 1 >= MAX_DEPTH:
            s.notes.append(
                f"{v.kind.value} {v.chain}: deeper than {MAX_DEPTH} chains, not followed"
            )
            return [(s, False)]
        hit_at, pkt, notes = len(s.hits) - 1, s.pkt, len(s.notes)
        subs = self.run_chain(table, v.chain, s, depth + 1)
        for st in subs:
            if not effect and st.verdict is None and st.pkt == pkt and len(st.notes) == notes:
                del st.hits[hit_at:]  # came back unchanged: keep the trace short
        if v.kind is ir.VerdictKind.GOTO:  # its return goes to our caller
            return [(st, False) for st in subs]
        return [(st, st.verdict is None) for st in subs]

    def trace(
        self, *, src: str, dst: str, port: int, proto: str = "tcp", hook: str | None = None
    ) -> TraceResult:
        """See trace_tables."""
        pkt = Packet(
            str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)), port, proto.lower()
        )
        if hook is None:
            hook = "output" if self.is_local(pkt.src) else "prerouting"
        if hook not in HOOKS:
            raise ValueError(f'hook "{hook}": expected one of {", ".join(HOOKS)}')
        entry = ir.Hook(hook)
        finished: list[_State] = []
        for s in self.run_hook(entry, [_State(pkt)]):
            if s.verdict is not None:
                finished.append(s)
                continue
            local_dst = self.is_local(s.pkt.dst)
            if entry is ir.Hook.OUTPUT:
                after = [ir.Hook.POSTROUTING] + ([ir.Hook.INPUT] if local_dst else [])
            elif local_dst:
                after = [ir.Hook.INPUT]
            else:
                after = [ir.Hook.FORWARD, ir.Hook.POSTROUTING]
            more = [s]
            for h in after:
                more = self.run_hook(h, more)
            finished.extend(more)
        notes: list[str] = []
        if not self.bases.get(entry):
            notes.append(f"no base chain hooks {hook}: the tables are empty or not loaded")
        return TraceResult(
            pkt, entry.value.upper(), tuple(_branch(s) for s in finished), tuple(notes)
        )


def _proto_number(value: str | int) -> int:
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    return int(text) if text.isdigit() else PROTO_NUMBERS.get(text, -1)


def _words(value: str | int) -> set[str]:
    return {w.strip().lower() for w in str(value).strip("{} ").split(",")}


def _fib_type(ip: str, local: bool) -> str:
    addr = ipaddress.IPv4Address(ip)
    if local:
        return "local"
    if addr.is_multicast:
        return "multicast"
    if addr == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    return "unicast"


def _verdict_text(v: ir.Verdict) -> str:
    return f"{v.kind.value} {v.chain}" if v.chain else v.kind.value


def trace_tables(
    tables: Sequence[ir.Table],
    *,
    src: str,
    dst: str,
    port: int,
    proto: str = "tcp",
    local_addresses: Collection[str] = (),
    hook: str | None = None,
) -> TraceResult:
    """Walk `tables` for one new connection's first packet. It enters by `hook` ("prerouting"
    or "output"; by default "output" when `src` is local, else "prerouting"), crosses every
    base chain of that hook in priority order (ties: table order), then those of the hooks
    the routing decision sends it through: input when its destination (after DNAT) is local,
    else forward and postrouting; output is followed by postrouting (and input when the
    destination is local). `local_addresses` are the node's addresses (`fib ... type local`,
    besides 127.0.0.0/8). Raises ValueError on an address that is not IPv4 or a bad hook."""
    return Tracer(tables, local_addresses).trace(
        src=src, dst=dst, port=port, proto=proto, hook=hook
    )


def _branch(s: _State) -> Branch:
    if s.verdict in ("drop", "reject"):
        outcome = s.verdict
    elif s.endpoint is not None:
        outcome = "dnat"
    else:
        outcome = "no-match"
    dnat = outcome == "dnat"
    return Branch(
        s.prob,
        tuple(s.hits),
        outcome,
        s.endpoint if dnat else None,
        s.masquerade and dnat,
        tuple(dict.fromkeys(s.notes)),
    )


__all__ = ["HOOKS", "Tracer", "trace_tables"]
