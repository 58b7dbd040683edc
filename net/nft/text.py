"""Render the nf_tables IR as nft syntax: rules, whole tables (block form) and batch ops.
Pure; the text loads with `nft -f` (nft 1.0.6) and is what people and golden files read.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from . import ir

# nft's unquoted identifier (chain, set and table names cannot be quoted in nft 1.0.6), and the
# bare words nft 1.0.6 reads as keywords there (measured: each refused as a chain, set or jump
# target name by `nft -c`)
_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_./\-]*\Z")
_KEYWORD_WORDS = (
    "accept add ah all arp auto-merge bridge cgroup chain comment comp constant continue "
    "counter cpu create ct day dccp define delete describe device devices dnat drop dst dup "
    "dynamic ecn element elements esp ether exists expires export exthdr fib flags flow "
    "flowtable flush frag fwd gc-interval get goto handle hbh hook hour ibriport ibrname icmp "
    "icmpv6 igmp iif iifgroup iifname iiftype import include index inet insert interval ip ip6 "
    "ipsec jhash jump limit list log map mark masquerade meta meter mh missing monitor netdev "
    "nftrace notrack numgen obriport obrname offload oif oifgroup oifname oiftype osf pkttype "
    "policy position priority queue quota random redefine redirect reject rename replace reset "
    "return rt rt0 rt2 rtclassid rule ruleset sctp secmark set size skgid skuid snat socket srh "
    "symhash synproxy table tcp th time timeout tproxy type typeof udp udplite undefine update "
    "vlan vmap xt"
)
_KEYWORDS = frozenset(_KEYWORD_WORDS.split())
NAME_MAX = 255  # NFT_*_MAXNAMELEN (256) includes the NUL
COMMENT_MAX = 128  # NFT_USERDATA_MAXLEN as nft enforces it for comments
_CT_STATES = ("invalid", "established", "related", "new", "untracked")

FIELD_TYPE = {
    ir.Field.IP_SADDR: "ipv4_addr",
    ir.Field.IP_DADDR: "ipv4_addr",
    ir.Field.L4PROTO: "inet_proto",
    ir.Field.TH_DPORT: "inet_service",
    ir.Field.FIB_DADDR_TYPE: "fib_addrtype",
    ir.Field.FIB_SADDR_TYPE: "fib_addrtype",
    ir.Field.CT_STATE: "ct_state",
}


def name(value: str, what: str = "name") -> str:
    """`value` if it is a valid unquoted nft identifier, else ValueError naming it."""
    if not _NAME.match(value) or len(value) > NAME_MAX:
        raise ValueError(f"invalid nft {what} {value!r} (want [A-Za-z_.][A-Za-z0-9_./-]*)")
    if value in _KEYWORDS:
        raise ValueError(f"invalid nft {what} {value!r}: an nft keyword")
    return value


def comment(text: str) -> str:
    """`comment "text"`; nft has no escape for quotes, so those (and newlines) are refused."""
    if '"' in text or "\n" in text or "\\" in text:
        raise ValueError(f"nft comment {text!r} must not contain quotes, backslashes or newlines")
    if len(text.encode()) > COMMENT_MAX:
        raise ValueError(f"nft comment {text!r} is longer than {COMMENT_MAX} bytes")
    return f'comment "{text}"'


def ct_states(value: str | int) -> list[str]:
    """The states of a CT_STATE value ("established,related"), checked."""
    states = [s.strip() for s in str(value).split(",")]
    for state in states:
        if state not in _CT_STATES:
            raise ValueError(f"unknown ct state {state!r} in {value!r}")
    return states


def _fields(fields: Iterable[ir.Field]) -> str:
    text = " . ".join(f.value for f in fields)
    if not text:
        raise ValueError("a set lookup needs at least one field")
    return text


def _cmp(expr: ir.Cmp) -> str:
    op = "!= " if expr.negate else ""
    if expr.field is ir.Field.CT_STATE:
        states = ct_states(expr.value)
        if expr.negate and len(states) > 1:
            return f"ct state & ({' | '.join(states)}) == 0"
        return f"ct state {op}{','.join(states)}"
    return f"{expr.field.value} {op}{expr.value}"


def verdict_text(v: ir.Verdict) -> str:
    if v.kind in (ir.VerdictKind.JUMP, ir.VerdictKind.GOTO):
        if v.chain is None:
            raise ValueError(f"{v.kind.value} needs a chain")
        return f"{v.kind.value} {name(v.chain, 'chain name')}"
    if v.chain is not None:
        raise ValueError(f"{v.kind.value} takes no chain (got {v.chain!r})")
    return str(v.kind.value)


def expr_text(expr: ir.Expr) -> str:
    """One expression or statement in nft syntax."""
    match expr:
        case ir.Cmp():
            return _cmp(expr)
        case ir.MarkTest():
            return f"meta mark & {expr.mask:#x} {'!=' if expr.is_set else '=='} 0"
        case ir.InSet():
            return f"{_fields(expr.fields)} {'!= ' if expr.negate else ''}@{name(expr.set, 'set')}"
        case ir.Random():
            return f"numgen random mod {expr.mod} == {expr.value}"
        case ir.MarkOr():
            return f"meta mark set meta mark or {expr.bits:#x}"
        case ir.MarkXor():
            return f"meta mark set meta mark xor {expr.bits:#x}"
        case ir.SetUpdate():
            return f"update @{name(expr.set, 'set')} {{ {expr.field.value} }}"
        case ir.Verdict():
            return verdict_text(expr)
        case ir.VMap():
            return f"{_fields(expr.fields)} vmap @{name(expr.map, 'map')}"
        case ir.Dnat():
            return f"dnat to {expr.addr}" + (f":{expr.port}" if expr.port is not None else "")
        case ir.Masquerade():
            return "masquerade fully-random" if expr.fully_random else "masquerade"
        case ir.Reject():
            return "reject"
    raise TypeError(f"not an nft IR expression: {expr!r}")


def rule_text(rule: ir.Rule) -> str:
    """A rule in nft syntax, e.g. `ip daddr 10.96.0.1 meta l4proto tcp th dport 80 jump x`."""
    parts = [expr_text(e) for e in rule.exprs]
    if rule.comment is not None:
        parts.append(comment(rule.comment))
    if not parts:
        raise ValueError("an nft rule needs at least one expression")
    return " ".join(parts)


def _base(base: ir.BaseChain) -> str:
    return f"type {base.type.value} hook {base.hook.value} priority {base.priority}; policy accept;"


def _chain_body(chain: ir.Chain) -> list[str]:
    body = []
    if chain.comment is not None:
        body.append(comment(chain.comment) + ";")
    if chain.base is not None:
        body.append(_base(chain.base))
    return body


def _set_kind(s: ir.SetDef) -> str:
    return "map" if s.verdict_map else "set"


def _set_body(s: ir.SetDef) -> list[str]:
    if not s.key:
        raise ValueError(f"set {s.name!r} needs a key")
    key = " . ".join(FIELD_TYPE[f] for f in s.key)
    body = [f"type {key}{' : verdict' if s.verdict_map else ''};"]
    if s.timeout is not None:
        if s.verdict_map:
            raise ValueError(f"map {s.name!r}: a timeout is only for plain sets")
        body.append("flags dynamic,timeout;")
        body.append(f"timeout {int(s.timeout)}s;")
    if s.comment is not None:
        body.append(comment(s.comment) + ";")
    return body


def element_text(s: str, e: ir.Element, verdict_map: bool | None = None) -> str:
    """`k1 . k2 ...` or `k1 . k2 : goto chain`; `verdict_map` checks the verdict's presence."""
    for v in e.key:
        if isinstance(v, str) and ("/" in v or not v or any(c in v for c in ' "{},;:')):
            raise ValueError(f"set {s!r}: invalid element key value {v!r}")
    if not e.key:
        raise ValueError(f"set {s!r}: empty element key")
    key = " . ".join(str(v) for v in e.key)
    if verdict_map is True and e.verdict is None:
        raise ValueError(f"map {s!r}: element {key} needs a verdict")
    if verdict_map is False and e.verdict is not None:
        raise ValueError(f"set {s!r}: element {key} cannot have a verdict")
    return key if e.verdict is None else f"{key} : {verdict_text(e.verdict)}"


def _elements(s: str, elements: Iterable[ir.Element], verdict_map: bool | None) -> str:
    return ", ".join(element_text(s, e, verdict_map) for e in elements)


def table_text(t: ir.Table) -> str:
    """A whole table in nft block form (sets and maps first, then chains with their rules).
    nft declares every chain of a block before adding set elements and rules, so verdict map
    elements and jumps may name any chain of the table."""
    lines = [f"table {ir.FAMILY} {name(t.name, 'table name')} {{"]
    for s, elements in t.sets:
        lines.append(f"\t{_set_kind(s)} {name(s.name, 'set name')} {{")
        lines += [f"\t\t{line}" for line in _set_body(s)]
        if elements:
            lines.append(f"\t\telements = {{ {_elements(s.name, elements, s.verdict_map)} }}")
        lines.append("\t}")
    for chain, rules in t.chains:
        lines.append(f"\tchain {name(chain.name, 'chain name')} {{")
        lines += [f"\t\t{line}" for line in _chain_body(chain)]
        lines += [f"\t\t{rule_text(r)}" for r in rules]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def op_text(op: ir.Op, maps: Collection[tuple[str, str]] = ()) -> str:
    """One op as one nft command. `maps` names the (table, set) pairs that are verdict maps
    (nft spells `flush map` differently from `flush set`)."""
    f = ir.FAMILY
    match op:
        case ir.AddTable():
            return f"add table {f} {name(op.table, 'table name')}"
        case ir.DeleteTable():
            return f"delete table {f} {name(op.table, 'table name')}"
        case ir.FlushTable():
            return f"flush table {f} {name(op.table, 'table name')}"
        case ir.AddChain():
            body = _chain_body(op.chain)
            spec = f"{f} {name(op.table, 'table name')} {name(op.chain.name, 'chain name')}"
            return f"add chain {spec}" + (f" {{ {' '.join(body)} }}" if body else "")
        case ir.FlushChain():
            return f"flush chain {f} {name(op.table, 'table name')} {name(op.chain, 'chain name')}"
        case ir.DeleteChain():
            return f"delete chain {f} {name(op.table, 'table name')} {name(op.chain, 'chain')}"
        case ir.AddRule():
            spec = f"{f} {name(op.table, 'table name')} {name(op.chain, 'chain name')}"
            return f"add rule {spec} {rule_text(op.rule)}"
        case ir.AddSet():
            spec = f"{f} {name(op.table, 'table name')} {name(op.set.name, 'set name')}"
            return f"add {_set_kind(op.set)} {spec} {{ {' '.join(_set_body(op.set))} }}"
        case ir.FlushSet():
            kind = "map" if (op.table, op.set) in maps else "set"
            return f"flush {kind} {f} {name(op.table, 'table name')} {name(op.set, 'set name')}"
        case ir.DeleteSet():
            return f"delete set {f} {name(op.table, 'table name')} {name(op.set, 'set name')}"
        case ir.AddElements() | ir.DeleteElements():
            verb = "add" if isinstance(op, ir.AddElements) else "delete"
            spec = f"{f} {name(op.table, 'table name')} {name(op.set, 'set name')}"
            if not op.elements:
                raise ValueError(f"{verb} element {spec}: no elements")
            elements = op.elements
            if verb == "delete":
                elements = tuple(ir.Element(e.key) for e in elements)
            return f"{verb} element {spec} {{ {_elements(op.set, elements, None)} }}"
    raise TypeError(f"not an nft IR op: {op!r}")


def ops_text(ops: Iterable[ir.Op], maps: Collection[tuple[str, str]] = ()) -> str:
    """A batch as `nft -f` text, one command per line in op order. Maps added by the batch
    itself are known; pass `maps` for verdict maps that already exist (see op_text)."""
    known = set(maps)
    lines = []
    for op in ops:
        if isinstance(op, ir.AddSet) and op.set.verdict_map:
            known.add((op.table, op.set.name))
        lines.append(op_text(op, known))
    return "\n".join(lines) + "\n"


__all__ = [
    "FIELD_TYPE",
    "comment",
    "element_text",
    "expr_text",
    "op_text",
    "ops_text",
    "rule_text",
    "table_text",
    "verdict_text",
]
