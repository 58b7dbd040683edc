"""The nf_tables IR: tables, chains, rules, sets and the ops of one atomic batch, as plain data.
Shared by the nft text renderer (for people and golden files) and the netlink encoder.

Everything is IPv4 (family "ip"). A rule is a tuple of expressions read left to right as nft
syntax reads: matches first, then at most one statement chain ending in an optional terminal
(verdict, vmap, dnat, masquerade or reject). Values are strings or ints exactly as nft syntax
spells them ("10.0.0.1", "10.88.0.0/16", "tcp", 8080, "local").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Field(enum.Enum):
    """A packet property a rule can compare or a set can be keyed by (nft spelling)."""

    IP_SADDR = "ip saddr"  # ipv4_addr, payload network header offset 12, 4 bytes
    IP_DADDR = "ip daddr"  # ipv4_addr, payload network header offset 16, 4 bytes
    L4PROTO = "meta l4proto"  # inet_proto, 1 byte
    TH_DPORT = "th dport"  # inet_service, payload transport header offset 2, 2 bytes (big endian)
    FIB_DADDR_TYPE = "fib daddr type"  # fib_addrtype ("local"), 4 bytes host order
    FIB_SADDR_TYPE = "fib saddr type"
    CT_STATE = "ct state"  # ct_state bits: "invalid", "established", "related", "new"


# ---- matches ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cmp:
    """`<field> <value>` or `<field> != <value>`; an IP field's value may be a CIDR (prefix
    match), CT_STATE's a comma-separated set of states (any of them)."""

    field: Field
    value: str | int
    negate: bool = False


@dataclass(frozen=True)
class MarkTest:
    """`meta mark & <mask> == 0` (is_set False) or `meta mark & <mask> != 0` (is_set True)."""

    mask: int
    is_set: bool


@dataclass(frozen=True)
class InSet:
    """`<f1> . <f2> ... @<set>` (or `!= @<set>` when negate): a lookup in a named set."""

    fields: tuple[Field, ...]
    set: str
    negate: bool = False


@dataclass(frozen=True)
class Random:
    """`numgen random mod <mod> == <value>` (a fresh random number per evaluation)."""

    mod: int
    value: int


# ---- statements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkOr:
    """`meta mark set meta mark or <bits>`."""

    bits: int


@dataclass(frozen=True)
class MarkXor:
    """`meta mark set meta mark xor <bits>`."""

    bits: int


@dataclass(frozen=True)
class SetUpdate:
    """`update @<set> { ip saddr }`: add or refresh the source address in a timeout set
    (ClientIP affinity)."""

    set: str
    field: Field = Field.IP_SADDR


# ---- terminals ----------------------------------------------------------------------------


class VerdictKind(enum.Enum):
    ACCEPT = "accept"
    DROP = "drop"
    RETURN = "return"
    JUMP = "jump"
    GOTO = "goto"


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    chain: str | None = None  # for JUMP and GOTO only


@dataclass(frozen=True)
class VMap:
    """`<f1> . <f2> ... vmap @<map>`: a verdict map lookup (no match: continue)."""

    fields: tuple[Field, ...]
    map: str


@dataclass(frozen=True)
class Dnat:
    """`meta l4proto <proto> dnat to <addr>:<port>` is spelled as Cmp(L4PROTO) + Dnat."""

    addr: str
    port: int | None = None


@dataclass(frozen=True)
class Masquerade:
    fully_random: bool = True


@dataclass(frozen=True)
class Reject:
    """`reject` (ICMP port unreachable, as iptables' REJECT default)."""


Expr = (
    Cmp
    | MarkTest
    | InSet
    | Random
    | MarkOr
    | MarkXor
    | SetUpdate
    | Verdict
    | VMap
    | Dnat
    | Masquerade
    | Reject
)


@dataclass(frozen=True)
class Rule:
    exprs: tuple[Expr, ...]
    comment: str | None = None


# ---- objects ------------------------------------------------------------------------------


class ChainType(enum.Enum):
    NAT = "nat"
    FILTER = "filter"


class Hook(enum.Enum):
    PREROUTING = "prerouting"
    INPUT = "input"
    FORWARD = "forward"
    OUTPUT = "output"
    POSTROUTING = "postrouting"


@dataclass(frozen=True)
class BaseChain:
    """What makes a chain a base chain: `type <type> hook <hook> priority <priority>;`
    (policy accept)."""

    type: ChainType
    hook: Hook
    priority: int


@dataclass(frozen=True)
class Chain:
    name: str
    base: BaseChain | None = None
    comment: str | None = None


@dataclass(frozen=True)
class SetDef:
    """A named set (`verdict_map` False) or verdict map keyed by `key` (concatenated when
    several fields). `timeout` (seconds) makes it a dynamic timeout set (`flags dynamic,
    timeout; timeout <n>s`), filled from the data path by SetUpdate."""

    name: str
    key: tuple[Field, ...]
    verdict_map: bool = False
    timeout: int | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Element:
    """A set element: one value per key field; a verdict map's element also has a verdict
    (JUMP or GOTO to a chain of the same table)."""

    key: tuple[str | int, ...]
    verdict: Verdict | None = None


@dataclass(frozen=True)
class Table:
    """A whole table as data: chains with their rules, sets with their elements (in order)."""

    name: str
    chains: tuple[tuple[Chain, tuple[Rule, ...]], ...]
    sets: tuple[tuple[SetDef, tuple[Element, ...]], ...] = ()


# ---- ops of a batch -----------------------------------------------------------------------
# A batch is a sequence of ops applied in order as one nf_tables transaction: all or nothing.
# Add ops create when absent and do nothing when present (nft `add`), except AddRule which
# appends. Delete ops fail when the object is absent; DeleteChain also when the chain still
# has rules or is referenced (flush it and drop the references earlier in the same batch).


@dataclass(frozen=True)
class AddTable:
    table: str


@dataclass(frozen=True)
class DeleteTable:
    table: str


@dataclass(frozen=True)
class FlushTable:
    """Remove every rule of every chain of the table (chains, sets and elements stay)."""

    table: str


@dataclass(frozen=True)
class AddChain:
    table: str
    chain: Chain


@dataclass(frozen=True)
class FlushChain:
    table: str
    chain: str


@dataclass(frozen=True)
class DeleteChain:
    table: str
    chain: str


@dataclass(frozen=True)
class AddRule:
    table: str
    chain: str
    rule: Rule


@dataclass(frozen=True)
class AddSet:
    table: str
    set: SetDef


@dataclass(frozen=True)
class FlushSet:
    """Remove every element of a set or map."""

    table: str
    set: str


@dataclass(frozen=True)
class DeleteSet:
    table: str
    set: str


@dataclass(frozen=True)
class AddElements:
    table: str
    set: str
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class DeleteElements:
    """Only the keys matter (a verdict map's verdicts are ignored)."""

    table: str
    set: str
    elements: tuple[Element, ...]


Op = (
    AddTable
    | DeleteTable
    | FlushTable
    | AddChain
    | FlushChain
    | DeleteChain
    | AddRule
    | AddSet
    | FlushSet
    | DeleteSet
    | AddElements
    | DeleteElements
)

FAMILY = "ip"

__all__ = [
    "FAMILY",
    "AddChain",
    "AddElements",
    "AddRule",
    "AddSet",
    "AddTable",
    "BaseChain",
    "Chain",
    "ChainType",
    "Cmp",
    "DeleteChain",
    "DeleteElements",
    "DeleteSet",
    "DeleteTable",
    "Dnat",
    "Element",
    "Expr",
    "Field",
    "FlushChain",
    "FlushSet",
    "FlushTable",
    "Hook",
    "InSet",
    "MarkOr",
    "MarkTest",
    "MarkXor",
    "Masquerade",
    "Op",
    "Random",
    "Reject",
    "Rule",
    "SetDef",
    "SetUpdate",
    "Table",
    "VMap",
    "Verdict",
    "VerdictKind",
]
