"""Encode nf_tables IR ops as one NETLINK_NETFILTER batch (the bytes nft 1.0.6 would send).
Pure: ops to messages to one batch; the expressions come from net/nft/fastpath.py.
"""

# `nft --debug=netlink,mnl` sends the same bytes for the same text, so that `nft list` prints our
# objects exactly as if nft had loaded them (set userdata, register choice, prefix matches).
# Speed (a full sync at 10k Services is ~100k ops): the batch is written in one pass with the
# cyclic GC paused.

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from . import ir
from .attrs import (
    NLA_HEAD,
    host32,
    name_attr,
    nla,
    nla_nest,
    nla_u32,
    set_key,
    str_attr,
    udata,
    verdict_attr,
)
from .exprs import comment_udata
from .fastpath import expr_bytes, forget, jump_data
from .nogc import no_gc
from .uapi import (
    CHAIN_HOOK,
    CHAIN_NAME,
    CHAIN_POLICY,
    CHAIN_TYPE,
    CHAIN_USERDATA,
    CONCAT_UDATA,
    DATA_VALUE,
    DELCHAIN,
    DELRULE,
    DELSET,
    DELSETELEM,
    DELTABLE,
    FIELDS,
    HOOK_HOOKNUM,
    HOOK_PRIORITY,
    HOOKS,
    LIST_ELEM,
    NEWCHAIN,
    NEWRULE,
    NEWSET,
    NEWSETELEM,
    NEWTABLE,
    NF_ACCEPT,
    NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO_IPV4,
    NFT_DATA_VERDICT_TYPE,
    NFT_SET_EVAL,
    NFT_SET_MAP,
    NFT_SET_TIMEOUT,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_REQUEST,
    RULE_CHAIN,
    RULE_EXPRESSIONS,
    RULE_USERDATA,
    SET_DATA_LEN,
    SET_DATA_TYPE,
    SET_ELEM_DATA,
    SET_ELEM_KEY,
    SET_ELEM_LIST_ELEMENTS,
    SET_ELEM_LIST_SET,
    SET_FLAGS,
    SET_ID,
    SET_KEY_LEN,
    SET_KEY_TYPE,
    SET_NAME,
    SET_TIMEOUT,
    SET_USERDATA,
    TABLE_FLAGS,
    TABLE_NAME,
    TYPE_IDS,
)

# ---- ops -> messages -----------------------------------------------------------------------


class Message(NamedTuple):
    """One nf_tables message of a batch: NFT_MSG_* type, NLM_F_* flags, attributes."""

    type: int
    flags: int
    attrs: bytes


def _set_udata(s: ir.SetDef) -> bytes:
    infos = [FIELDS[f] for f in s.key]
    out = udata(0, host32(infos[0].byteorder if len(infos) == 1 else 0))
    if s.verdict_map:
        out += udata(1, host32(0))
    if len(infos) > 1:
        out += CONCAT_UDATA
    if s.verdict_map:
        out += udata(6, host32(0))
    if s.comment is not None:
        out += comment_udata(7, s.comment)
    return out


def _set_attrs(table: bytes, s: ir.SetDef, set_id: int) -> bytes:
    if not s.key:
        raise ValueError(f"set {s.name!r} needs a key")
    infos = [FIELDS[f] for f in s.key]
    key_type = 0
    for info in infos:
        key_type = (key_type << 6) | TYPE_IDS[info.type_name]
    key_len = infos[0].length if len(infos) == 1 else 4 * len(infos)
    flags = NFT_SET_MAP if s.verdict_map else 0
    if s.timeout is not None:
        if s.verdict_map:
            raise ValueError(f"map {s.name!r}: a timeout is only for plain sets")
        if s.timeout <= 0:
            raise ValueError(f"set {s.name!r}: timeout must be positive, not {s.timeout}")
        flags |= NFT_SET_TIMEOUT | NFT_SET_EVAL
    parts = [
        table,
        name_attr(SET_NAME, s.name, "set name"),
        nla_u32(SET_FLAGS, flags),
        nla_u32(SET_KEY_TYPE, key_type),
        nla_u32(SET_KEY_LEN, key_len),
    ]
    if s.verdict_map:
        parts += [nla_u32(SET_DATA_TYPE, NFT_DATA_VERDICT_TYPE), nla_u32(SET_DATA_LEN, 0)]
    parts.append(nla_u32(SET_ID, set_id))  # required; unique in the batch
    if s.timeout is not None:
        parts.append(nla(SET_TIMEOUT, struct.pack(">Q", int(s.timeout) * 1000)))
    parts.append(nla(SET_USERDATA, _set_udata(s)))
    return b"".join(parts)


def _element(keyfields: Sequence[ir.Field], set_name: str, e: ir.Element, data: bool) -> bytes:
    key = set_key(keyfields, e.key, set_name)
    parts = [nla_nest(SET_ELEM_KEY, nla(DATA_VALUE, key))]
    if data and e.verdict is not None:
        jump = jump_data(e.verdict)
        if jump is not None:
            parts.append(nla_nest(SET_ELEM_DATA, jump))
        else:
            parts.append(verdict_attr(SET_ELEM_DATA, e.verdict))
    return nla_nest(LIST_ELEM, *parts)


ELEMENTS_PER_MESSAGE_BYTES = 60000  # a nested attribute's length is 16 bits


def _elements_messages(
    kind: int,
    table: bytes,
    set_name: str,
    elements: Sequence[ir.Element],
    fields: Sequence[ir.Field],
) -> list[Message]:
    if not elements:
        verb = "add" if kind == NEWSETELEM else "delete"
        raise ValueError(f"{verb} element {_table_name(table)} {set_name}: no elements")
    head = table + name_attr(SET_ELEM_LIST_SET, set_name, "set name")
    flags = NLM_F_CREATE if kind == NEWSETELEM else 0
    out: list[Message] = []
    chunk: list[bytes] = []
    size = 0
    data = kind == NEWSETELEM
    for e in elements:
        b = _element(fields, set_name, e, data)
        if chunk and size + len(b) > ELEMENTS_PER_MESSAGE_BYTES:
            out.append(Message(kind, flags, head + nla_nest(SET_ELEM_LIST_ELEMENTS, *chunk)))
            chunk, size = [], 0
        chunk.append(b)
        size += len(b)
    out.append(Message(kind, flags, head + nla_nest(SET_ELEM_LIST_ELEMENTS, *chunk)))
    return out


def _chain_attrs(table: bytes, chain: ir.Chain) -> bytes:
    parts = [table, name_attr(CHAIN_NAME, chain.name, "chain name")]
    if chain.base is not None:
        b = chain.base
        hook = nla_nest(
            CHAIN_HOOK, nla_u32(HOOK_HOOKNUM, HOOKS[b.hook]), nla_u32(HOOK_PRIORITY, b.priority)
        )
        parts += [str_attr(CHAIN_TYPE, b.type.value), nla_u32(CHAIN_POLICY, NF_ACCEPT), hook]
    if chain.comment is not None:
        parts.append(nla(CHAIN_USERDATA, comment_udata(0, chain.comment)))
    return b"".join(parts)


def _rule_attrs(table: bytes, chain: str, rule: ir.Rule) -> bytes:
    exprs = b"".join([expr_bytes(e) for e in rule.exprs])
    if not exprs:
        raise ValueError(f"rule in chain {chain!r}: no expressions")
    out = (
        table
        + name_attr(RULE_CHAIN, chain, "chain name")
        + NLA_HEAD(4 + len(exprs), RULE_EXPRESSIONS | NLA_F_NESTED)
        + exprs
    )
    if rule.comment is not None:
        out += nla(RULE_USERDATA, comment_udata(0, rule.comment))
    return out


def rule_attrs(table: str, chain: str, rule: ir.Rule) -> bytes:
    """NEWRULE attributes: table, chain, the expressions and the comment (userdata)."""
    try:
        return _rule_attrs(_table_attr(table), chain, rule)
    finally:
        forget()


def _table_attr(table: str) -> bytes:
    """NFTA_{TABLE,CHAIN,RULE,SET,SET_ELEM_LIST}_TABLE: each object's table is attribute 1."""
    return name_attr(TABLE_NAME, table, "table name")


def _table_name(table: bytes) -> str:
    return table[4:].rstrip(b"\0").decode()


# The ops of one message each: their attributes from (op, table attribute, set id)


def _table_only(op: ir.DeleteTable | ir.FlushTable, table: bytes, _set_id: int) -> bytes:
    return table


def _add_table(op: ir.AddTable, table: bytes, _set_id: int) -> bytes:
    return table + nla_u32(TABLE_FLAGS, 0)


def _add_chain(op: ir.AddChain, table: bytes, _set_id: int) -> bytes:
    return _chain_attrs(table, op.chain)


def _flush_chain(op: ir.FlushChain, table: bytes, _set_id: int) -> bytes:
    return table + name_attr(RULE_CHAIN, op.chain, "chain name")


def _delete_chain(op: ir.DeleteChain, table: bytes, _set_id: int) -> bytes:
    return table + name_attr(CHAIN_NAME, op.chain, "chain name")


def _add_rule(op: ir.AddRule, table: bytes, _set_id: int) -> bytes:
    return _rule_attrs(table, op.chain, op.rule)


def _add_set(op: ir.AddSet, table: bytes, set_id: int) -> bytes:
    return _set_attrs(table, op.set, set_id)


def _flush_set(op: ir.FlushSet, table: bytes, _set_id: int) -> bytes:
    return table + name_attr(SET_ELEM_LIST_SET, op.set, "set")


def _delete_set(op: ir.DeleteSet, table: bytes, _set_id: int) -> bytes:
    return table + name_attr(SET_NAME, op.set, "set name")


_ONE: dict[type, tuple[int, int, Callable[[Any, bytes, int], bytes]]] = {
    ir.AddTable: (NEWTABLE, NLM_F_CREATE, _add_table),
    ir.DeleteTable: (DELTABLE, 0, _table_only),
    ir.FlushTable: (DELRULE, 0, _table_only),
    ir.AddChain: (NEWCHAIN, NLM_F_CREATE, _add_chain),
    ir.FlushChain: (DELRULE, 0, _flush_chain),
    ir.DeleteChain: (DELCHAIN, 0, _delete_chain),
    ir.AddRule: (NEWRULE, NLM_F_CREATE | NLM_F_APPEND, _add_rule),
    ir.AddSet: (NEWSET, NLM_F_CREATE, _add_set),
    ir.FlushSet: (DELSETELEM, 0, _flush_set),
    ir.DeleteSet: (DELSET, 0, _delete_set),
}
"""NFT_MSG_* type, NLM_F_* flags and the attributes of each single-message op."""


def _elements(op: ir.Op, table: bytes, sets: _Sets) -> list[Message]:
    """The messages of an element op (several when its elements do not fit in one)."""
    if not isinstance(op, ir.AddElements | ir.DeleteElements):
        raise TypeError(f"not an nft IR op: {op!r}")
    kind = NEWSETELEM if isinstance(op, ir.AddElements) else DELSETELEM
    s = sets.get((op.table, op.set))
    if s is None:
        raise ValueError(f"set {op.set!r} of table {op.table!r}: unknown key types")
    if kind == NEWSETELEM:
        _check_verdicts(s, op.elements)
    return _elements_messages(kind, table, op.set, op.elements, s.key)


_Sets = Mapping[tuple[str, str], ir.SetDef]


def op_messages(op: ir.Op, sets: _Sets | None = None, set_id: int = 1) -> list[Message]:
    """The messages of one op (element ops may need several). Element keys are typed by their
    set: `sets` must hold the definition of the set of an element op."""
    one = _ONE.get(type(op))
    try:
        table = _table_attr(op.table)
        if one is None:
            return _elements(op, table, sets or {})
        kind, flags, attrs = one
        return [Message(kind, flags, attrs(op, table, set_id))]
    finally:
        forget()


def _check_verdicts(s: ir.SetDef, elements: Iterable[ir.Element]) -> None:
    for e in elements:
        if s.verdict_map and e.verdict is None:
            raise ValueError(f"map {s.name!r}: element {e.key!r} needs a verdict")
        if not s.verdict_map and e.verdict is not None:
            raise ValueError(f"set {s.name!r}: element {e.key!r} cannot have a verdict")


def nlmsg_header(kind: int, flags: int, seq: int, family: int, res_id: int, length: int) -> bytes:
    nlmsg = struct.pack("=IHHII", 16 + 4 + length, kind, flags, seq, 0)
    return nlmsg + struct.pack(">BBH", family, 0, res_id)


class EncodeError(ValueError):
    """An op that cannot be encoded (bad name, value or shape); nothing was sent."""

    def __init__(self, index: int, op: ir.Op, cause: Exception) -> None:
        super().__init__(f"op #{index} ({type(op).__name__} on table {op.table!r}): {cause}")
        self.index = index
        self.op = op


class Batch(NamedTuple):
    """An encoded batch: its bytes, the first sequence number (BATCH_BEGIN's) and, for each
    op message, the index of its op."""

    data: bytes
    seq: int
    op_index: tuple[int, ...]


def encode_batch(ops: Iterable[ir.Op], seq: int = 1, sets: _Sets | None = None) -> Batch:
    """BATCH_BEGIN, one or more messages per op, BATCH_END. Only the last op message asks for
    an ACK (NLM_F_ACK): the kernel reports every refused message anyway, and an ACK per message
    overruns the socket's receive buffer on big batches (measured: ENOBUFS at 10k messages).
    `sets`: definitions of sets that element ops use but the batch does not add."""
    try:
        with no_gc():
            return _encode_batch(ops, seq, dict(sets or {}))
    finally:
        forget()


_MSG = struct.Struct("=IHHIIBBH")  # nlmsghdr + nfgenmsg (res_id 0: no byte order to mind)
_SUBSYS = NFNL_SUBSYS_NFTABLES << 8


def _encode_batch(ops: Iterable[ir.Op], seq: int, known: dict[tuple[str, str], ir.SetDef]) -> Batch:
    parts = [nlmsg_header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, 0)]
    index: list[int] = []
    n = seq
    head = _MSG.pack
    table_name: str | None = None  # ops come in runs on one table
    table = b""
    for i, op in enumerate(ops):
        one = _ONE.get(type(op))
        try:
            if op.table != table_name:
                table = _table_attr(op.table)
                table_name = op.table
            if one is not None:  # most ops: one message, straight into the batch
                kind, flags, attrs_of = one
                if type(op) is ir.AddSet:
                    known[(op.table, op.set.name)] = op.set
                attrs = attrs_of(op, table, i + 1)
                n += 1
                kind |= _SUBSYS
                parts += (
                    head(20 + len(attrs), kind, NLM_F_REQUEST | flags, n, 0, NFPROTO_IPV4, 0, 0),
                    attrs,
                )
                index.append(i)
                continue
            messages = _elements(op, table, known)
        except (ValueError, KeyError, TypeError) as e:
            raise EncodeError(i, op, e) from e
        for kind, flags, attrs in messages:
            n += 1
            kind |= _SUBSYS
            parts += (
                head(20 + len(attrs), kind, NLM_F_REQUEST | flags, n, 0, NFPROTO_IPV4, 0, 0),
                attrs,
            )
            index.append(i)
    if index:  # the last op message asks for the ACK
        fields = list(_MSG.unpack(parts[-2]))
        fields[2] |= NLM_F_ACK
        parts[-2] = head(*fields)
    parts.append(nlmsg_header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, n + 1, 0, NFNL_SUBSYS_NFTABLES, 0))
    return Batch(b"".join(parts), seq, tuple(index))


def encode(ops: Iterable[ir.Op], seq: int = 1, sets: _Sets | None = None) -> bytes:
    """The whole batch as bytes (pure)."""
    return encode_batch(ops, seq, sets).data
