"""The straightforward nf_tables encoder (one small function per attribute, no caches, no
templates) that net/nft/encode.py must match byte for byte: the tests' reference."""

# Facts from the kernel uapi (linux/netfilter/nf_tables.h, nfnetlink.h) and from what
# `nft --debug=netlink,mnl` sends for the same text, so that `nft list` prints our objects
# exactly as if nft had loaded them (set userdata, register choice, prefix matches).

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from net.nft import ir
from net.nft.text import comment as _check_comment
from net.nft.text import ct_states, name

# The kernel's numbers (net/nft/uapi.py) are shared facts, checked against nft -f by the
# integration tests; this reference shares nothing else with the encoder: its encoding logic,
# attribute packing and values are written again plainly below.
from net.nft.uapi import (
    ADDRTYPES,
    CHAIN_HOOK,
    CHAIN_NAME,
    CHAIN_POLICY,
    CHAIN_TABLE,
    CHAIN_TYPE,
    CHAIN_USERDATA,
    CONCAT_UDATA,
    CT_BITS,
    DATA_VALUE,
    DATA_VERDICT,
    DELCHAIN,
    DELRULE,
    DELSET,
    DELSETELEM,
    DELTABLE,
    EXPR_DATA,
    EXPR_NAME,
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
    NF_NAT_RANGE_PROTO_RANDOM_FULLY,
    NF_NAT_RANGE_PROTO_SPECIFIED,
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
    PROTOS,
    REG32_00,
    REG_1,
    REG_2,
    REG_VERDICT,
    RULE_CHAIN,
    RULE_EXPRESSIONS,
    RULE_TABLE,
    RULE_USERDATA,
    SET_DATA_LEN,
    SET_DATA_TYPE,
    SET_ELEM_DATA,
    SET_ELEM_KEY,
    SET_ELEM_LIST_ELEMENTS,
    SET_ELEM_LIST_SET,
    SET_ELEM_LIST_TABLE,
    SET_FLAGS,
    SET_ID,
    SET_KEY_LEN,
    SET_KEY_TYPE,
    SET_NAME,
    SET_TABLE,
    SET_TIMEOUT,
    SET_USERDATA,
    TABLE_FLAGS,
    TABLE_NAME,
    TYPE_IDS,
    VERDICT_CHAIN,
    VERDICT_CODE,
    VERDICT_CODES,
)

# ---- attribute packing ---------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    head = struct.pack("=HH", 4 + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


def _nest(kind: int, *children: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(children))


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack(">I", value & 0xFFFFFFFF))


def str_attr(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _host32(value: int) -> bytes:
    return struct.pack("=I", value & 0xFFFFFFFF)


def _udata(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value))) + value


# ---- values --------------------------------------------------------------------------------


def field_value(field: ir.Field, value: str | int) -> bytes:
    """A field's value as the bytes the kernel compares (unpadded), or ValueError."""
    text = str(value).strip()
    try:
        if field in (ir.Field.IP_SADDR, ir.Field.IP_DADDR):
            return ipaddress.IPv4Address(text).packed
        if field is ir.Field.L4PROTO:
            proto = PROTOS[text] if text in PROTOS else int(text)
            return struct.pack("B", proto)
        if field is ir.Field.TH_DPORT:
            return struct.pack(">H", int(text))
        if field in (ir.Field.FIB_DADDR_TYPE, ir.Field.FIB_SADDR_TYPE):
            return _host32(ADDRTYPES[text] if text in ADDRTYPES else int(text))
        if field is ir.Field.CT_STATE:
            return _host32(sum(CT_BITS[s] for s in set(ct_states(text))))
    except (ValueError, KeyError, struct.error) as e:
        raise ValueError(f"invalid {field.value} value {value!r}: {e}") from None
    raise ValueError(f"unknown field {field!r}")


def _key(fields: Sequence[ir.Field], values: Sequence[str | int], where: str) -> bytes:
    if len(fields) != len(values):
        raise ValueError(f"{where}: key {values!r} does not match the set's {len(fields)} fields")
    if len(fields) == 1:
        return field_value(fields[0], values[0])
    return b"".join(_pad4(field_value(f, v)) for f, v in zip(fields, values, strict=True))


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _data_value(kind: int, value: bytes) -> bytes:
    return _nest(kind, _attr(DATA_VALUE, value))


def _verdict(kind: int, v: ir.Verdict) -> bytes:
    parts = [_u32(VERDICT_CODE, VERDICT_CODES[v.kind])]
    if v.kind in (ir.VerdictKind.JUMP, ir.VerdictKind.GOTO):
        if v.chain is None:
            raise ValueError(f"{v.kind.value} needs a chain")
        parts.append(str_attr(VERDICT_CHAIN, name(v.chain, "chain name")))
    elif v.chain is not None:
        raise ValueError(f"{v.kind.value} takes no chain (got {v.chain!r})")
    return _nest(kind, _nest(DATA_VERDICT, *parts))


# ---- expressions ---------------------------------------------------------------------------


def _expr(kind: str, *attrs: bytes) -> bytes:
    return _nest(LIST_ELEM, str_attr(EXPR_NAME, kind), _nest(EXPR_DATA, *attrs))


def _payload(dreg: int, base: int, offset: int, length: int) -> bytes:
    return _expr("payload", _u32(1, dreg), _u32(2, base), _u32(3, offset), _u32(4, length))


def _cmp(op: int, value: bytes, sreg: int = REG_1) -> bytes:
    return _expr("cmp", _u32(1, sreg), _u32(2, op), _data_value(3, value))


def _bitwise(length: int, mask: bytes, xor: bytes) -> bytes:
    return _expr(
        "bitwise",
        _u32(1, REG_1),
        _u32(2, REG_1),
        _u32(6, 0),  # NFT_BITWISE_BOOL
        _u32(3, length),
        _data_value(4, mask),
        _data_value(5, xor),
    )


def _load(field: ir.Field, dreg: int, length: int | None = None) -> bytes:
    """Load a field into dreg (payload, meta, fib or ct), as nft does."""
    if field is ir.Field.IP_SADDR:
        return _payload(dreg, 1, 12, length or 4)
    if field is ir.Field.IP_DADDR:
        return _payload(dreg, 1, 16, length or 4)
    if field is ir.Field.TH_DPORT:
        return _payload(dreg, 2, 2, 2)
    if field is ir.Field.L4PROTO:
        return _expr("meta", _u32(2, 16), _u32(1, dreg))  # NFT_META_L4PROTO
    if field in (ir.Field.FIB_DADDR_TYPE, ir.Field.FIB_SADDR_TYPE):
        flags = 2 if field is ir.Field.FIB_DADDR_TYPE else 1  # NFTA_FIB_F_DADDR / _SADDR
        return _expr("fib", _u32(3, flags), _u32(2, 3), _u32(1, dreg))  # RESULT_ADDRTYPE
    if field is ir.Field.CT_STATE:
        return _expr("ct", _u32(2, 0), _u32(1, dreg))  # NFT_CT_STATE
    raise ValueError(f"unknown field {field!r}")


def _load_key(fields: Sequence[ir.Field]) -> list[bytes]:
    """Load a (concatenated) key into consecutive 32-bit registers from REG_1."""
    if not fields:
        raise ValueError("a set lookup needs at least one field")
    return [_load(f, REG_1 if i == 0 else REG32_00 + i) for i, f in enumerate(fields)]


def _match_cmp(e: ir.Cmp) -> list[bytes]:
    op = 1 if e.negate else 0  # NFT_CMP_NEQ / NFT_CMP_EQ
    if e.field in (ir.Field.IP_SADDR, ir.Field.IP_DADDR) and "/" in str(e.value):
        try:
            net = ipaddress.IPv4Network(str(e.value).strip())
        except ValueError as err:
            raise ValueError(f"invalid {e.field.value} value {e.value!r}: {err}") from None
        plen, addr = net.prefixlen, net.network_address.packed
        if plen == 32:
            return [_load(e.field, REG_1), _cmp(op, addr)]
        if plen % 8 == 0 and plen > 0:
            return [_load(e.field, REG_1, plen // 8), _cmp(op, addr[: plen // 8])]
        mask = net.netmask.packed
        return [_load(e.field, REG_1), _bitwise(4, mask, bytes(4)), _cmp(op, addr)]
    value = field_value(e.field, e.value)
    if e.field is ir.Field.CT_STATE and not (e.negate and len(ct_states(e.value)) == 1):
        # `ct state a,b` is "any of": state & bits != 0; `& (a|b) == 0` when negated
        return [_load(e.field, REG_1), _bitwise(4, value, bytes(4)), _cmp(op ^ 1, bytes(4))]
    return [_load(e.field, REG_1), _cmp(op, value)]


def _mark_load() -> bytes:
    return _expr("meta", _u32(2, 3), _u32(1, REG_1))  # NFT_META_MARK


def _mark_set() -> bytes:
    return _expr("meta", _u32(2, 3), _u32(3, REG_1))


def expr_messages(e: ir.Expr) -> tuple[bytes, ...]:
    """The kernel expressions (NFTA_LIST_ELEM attributes) for one IR expression (cached:
    rules of a ruleset share most of their expressions)."""
    return tuple(_expr_messages(e))


def _expr_messages(e: ir.Expr) -> list[bytes]:
    match e:
        case ir.Cmp():
            return _match_cmp(e)
        case ir.MarkTest():
            return [
                _mark_load(),
                _bitwise(4, _host32(e.mask), bytes(4)),
                _cmp(1 if e.is_set else 0, bytes(4)),
            ]
        case ir.MarkOr():
            mask = _host32(~e.bits)
            return [_mark_load(), _bitwise(4, mask, _host32(e.bits)), _mark_set()]
        case ir.MarkXor():
            return [_mark_load(), _bitwise(4, _host32(~0), _host32(e.bits)), _mark_set()]
        case ir.InSet() | ir.VMap():
            fields, set_name = (e.fields, e.set) if isinstance(e, ir.InSet) else (e.fields, e.map)
            attrs = [_u32(2, REG_1)]
            if isinstance(e, ir.VMap):
                attrs.append(_u32(3, REG_VERDICT))
            attrs.append(str_attr(1, name(set_name, "set name")))
            if isinstance(e, ir.InSet) and e.negate:
                attrs.append(_u32(5, 1))  # NFT_LOOKUP_F_INV
            return [*_load_key(fields), _expr("lookup", *attrs)]
        case ir.Random():
            if e.mod <= 0 or not 0 <= e.value < e.mod:
                raise ValueError(f"numgen random mod {e.mod} == {e.value}: value out of range")
            ng = _expr("numgen", _u32(1, REG_1), _u32(2, e.mod), _u32(3, 1), _u32(4, 0))
            return [ng, _cmp(0, _host32(e.value))]
        case ir.SetUpdate():
            dynset = _expr(
                "dynset", _u32(4, REG_1), _u32(3, 1), str_attr(1, name(e.set, "set name"))
            )
            return [_load(e.field, REG_1), dynset]
        case ir.Verdict():
            return [_expr("immediate", _u32(1, REG_VERDICT), _verdict(2, e))]
        case ir.Dnat():
            out = [_expr("immediate", _u32(1, REG_1), _data_value(2, _addr(e.addr)))]
            nat = [_u32(1, 1), _u32(2, NFPROTO_IPV4), _u32(3, REG_1)]  # NFT_NAT_DNAT
            if e.port is not None:
                if not 0 < e.port < 65536:
                    raise ValueError(f"dnat to {e.addr}:{e.port}: port out of range")
                port = struct.pack(">H", e.port)
                out.append(_expr("immediate", _u32(1, REG_2), _data_value(2, port)))
                nat += [_u32(5, REG_2), _u32(7, NF_NAT_RANGE_PROTO_SPECIFIED)]
            return [*out, _expr("nat", *nat)]
        case ir.Masquerade():
            if e.fully_random:
                return [_expr("masq", _u32(1, NF_NAT_RANGE_PROTO_RANDOM_FULLY))]
            return [_expr("masq")]
        case ir.Reject():
            # NFT_REJECT_ICMP_UNREACH, port unreachable
            return [_expr("reject", _u32(1, 0), _attr(2, b"\x03"))]
    raise TypeError(f"not an nft IR expression: {e!r}")


def _addr(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError as e:
        raise ValueError(f"invalid dnat address {text!r}: {e}") from None


def _comment_udata(kind: int, text: str) -> bytes:
    _check_comment(text)
    return _udata(kind, text.encode() + b"\0")


# ---- ops -> messages -----------------------------------------------------------------------


class Message(NamedTuple):
    """One nf_tables message of a batch: NFT_MSG_* type, NLM_F_* flags, attributes."""

    type: int
    flags: int
    attrs: bytes


def _set_udata(s: ir.SetDef) -> bytes:
    infos = [FIELDS[f] for f in s.key]
    out = _udata(0, _host32(infos[0].byteorder if len(infos) == 1 else 0))
    if s.verdict_map:
        out += _udata(1, _host32(0))
    if len(infos) > 1:
        out += CONCAT_UDATA
    if s.verdict_map:
        out += _udata(6, _host32(0))
    if s.comment is not None:
        out += _comment_udata(7, s.comment)
    return out


def _set_attrs(table: str, s: ir.SetDef, set_id: int) -> bytes:
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
        str_attr(SET_TABLE, table),
        str_attr(SET_NAME, name(s.name, "set name")),
        _u32(SET_FLAGS, flags),
        _u32(SET_KEY_TYPE, key_type),
        _u32(SET_KEY_LEN, key_len),
    ]
    if s.verdict_map:
        parts += [_u32(SET_DATA_TYPE, NFT_DATA_VERDICT_TYPE), _u32(SET_DATA_LEN, 0)]
    parts.append(_u32(SET_ID, set_id))  # required; unique in the batch
    if s.timeout is not None:
        parts.append(_attr(SET_TIMEOUT, struct.pack(">Q", int(s.timeout) * 1000)))
    parts.append(_attr(SET_USERDATA, _set_udata(s)))
    return b"".join(parts)


def _element(keyfields: Sequence[ir.Field], set_name: str, e: ir.Element, data: bool) -> bytes:
    key = _key(keyfields, e.key, f"set {set_name!r}")
    parts = [_nest(SET_ELEM_KEY, _attr(DATA_VALUE, key))]
    if data and e.verdict is not None:
        parts.append(_verdict(SET_ELEM_DATA, e.verdict))
    return _nest(LIST_ELEM, *parts)


ELEMENTS_PER_MESSAGE_BYTES = 60000  # a nested attribute's length is 16 bits


def _elements_messages(
    kind: int, table: str, set_name: str, elements: Sequence[ir.Element], fields: Sequence[ir.Field]
) -> list[Message]:
    if not elements:
        verb = "add" if kind == NEWSETELEM else "delete"
        raise ValueError(f"{verb} element {table} {set_name}: no elements")
    head = str_attr(SET_ELEM_LIST_TABLE, table) + str_attr(
        SET_ELEM_LIST_SET, name(set_name, "set name")
    )
    flags = NLM_F_CREATE if kind == NEWSETELEM else 0
    out: list[Message] = []
    chunk: list[bytes] = []
    size = 0
    for e in elements:
        b = _element(fields, set_name, e, kind == NEWSETELEM)
        if chunk and size + len(b) > ELEMENTS_PER_MESSAGE_BYTES:
            out.append(Message(kind, flags, head + _nest(SET_ELEM_LIST_ELEMENTS, *chunk)))
            chunk, size = [], 0
        chunk.append(b)
        size += len(b)
    out.append(Message(kind, flags, head + _nest(SET_ELEM_LIST_ELEMENTS, *chunk)))
    return out


def _chain_attrs(table: str, chain: ir.Chain) -> bytes:
    parts = [str_attr(CHAIN_TABLE, table), str_attr(CHAIN_NAME, name(chain.name, "chain name"))]
    if chain.base is not None:
        b = chain.base
        hook = _nest(CHAIN_HOOK, _u32(HOOK_HOOKNUM, HOOKS[b.hook]), _u32(HOOK_PRIORITY, b.priority))
        parts += [str_attr(CHAIN_TYPE, b.type.value), _u32(CHAIN_POLICY, NF_ACCEPT), hook]
    if chain.comment is not None:
        parts.append(_attr(CHAIN_USERDATA, _comment_udata(0, chain.comment)))
    return b"".join(parts)


def rule_attrs(table: str, chain: str, rule: ir.Rule) -> bytes:
    """NEWRULE attributes: table, chain, the expressions and the comment (userdata)."""
    exprs = [m for e in rule.exprs for m in expr_messages(e)]
    if not exprs:
        raise ValueError(f"rule in chain {chain!r}: no expressions")
    parts = [
        str_attr(RULE_TABLE, table),
        str_attr(RULE_CHAIN, name(chain, "chain name")),
        _nest(RULE_EXPRESSIONS, *exprs),
    ]
    if rule.comment is not None:
        parts.append(_attr(RULE_USERDATA, _comment_udata(0, rule.comment)))
    return b"".join(parts)


def op_messages(
    op: ir.Op, sets: Mapping[tuple[str, str], ir.SetDef] | None = None, set_id: int = 1
) -> list[Message]:
    """The messages of one op (element ops may need several). Element keys are typed by their
    set: `sets` must hold the definition of the set of an element op."""
    table = name(op.table, "table name")
    create = NLM_F_CREATE
    match op:
        case ir.AddTable():
            return [Message(NEWTABLE, create, str_attr(TABLE_NAME, table) + _u32(TABLE_FLAGS, 0))]
        case ir.DeleteTable():
            return [Message(DELTABLE, 0, str_attr(TABLE_NAME, table))]
        case ir.FlushTable():
            return [Message(DELRULE, 0, str_attr(RULE_TABLE, table))]
        case ir.AddChain():
            return [Message(NEWCHAIN, create, _chain_attrs(table, op.chain))]
        case ir.FlushChain():
            attrs = str_attr(RULE_TABLE, table) + str_attr(RULE_CHAIN, name(op.chain, "chain name"))
            return [Message(DELRULE, 0, attrs)]
        case ir.DeleteChain():
            attrs = str_attr(CHAIN_TABLE, table) + str_attr(
                CHAIN_NAME, name(op.chain, "chain name")
            )
            return [Message(DELCHAIN, 0, attrs)]
        case ir.AddRule():
            return [Message(NEWRULE, create | NLM_F_APPEND, rule_attrs(table, op.chain, op.rule))]
        case ir.AddSet():
            return [Message(NEWSET, create, _set_attrs(table, op.set, set_id))]
        case ir.FlushSet():
            attrs = str_attr(SET_ELEM_LIST_TABLE, table) + str_attr(
                SET_ELEM_LIST_SET, name(op.set, "set")
            )
            return [Message(DELSETELEM, 0, attrs)]
        case ir.DeleteSet():
            attrs = str_attr(SET_TABLE, table) + str_attr(SET_NAME, name(op.set, "set name"))
            return [Message(DELSET, 0, attrs)]
        case ir.AddElements() | ir.DeleteElements():
            kind = NEWSETELEM if isinstance(op, ir.AddElements) else DELSETELEM
            s = (sets or {}).get((op.table, op.set))
            if s is None:
                raise ValueError(f"set {op.set!r} of table {op.table!r}: unknown key types")
            if kind == NEWSETELEM:
                _check_verdicts(s, op.elements)
            return _elements_messages(kind, table, op.set, op.elements, s.key)
    raise TypeError(f"not an nft IR op: {op!r}")


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


def encode_batch(
    ops: Iterable[ir.Op], seq: int = 1, sets: Mapping[tuple[str, str], ir.SetDef] | None = None
) -> Batch:
    """BATCH_BEGIN, one or more messages per op, BATCH_END. Only the last op message asks for
    an ACK (NLM_F_ACK): the kernel reports every refused message anyway, and an ACK per message
    overruns the socket's receive buffer on big batches (measured: ENOBUFS at 10k messages).
    `sets`: definitions of sets that element ops use but the batch does not add."""
    known = dict(sets or {})
    messages: list[Message] = []
    index: list[int] = []
    for i, op in enumerate(ops):
        if isinstance(op, ir.AddSet):
            known[(op.table, op.set.name)] = op.set
        try:
            encoded = op_messages(op, known, set_id=i + 1)
        except (ValueError, KeyError, TypeError) as e:
            raise EncodeError(i, op, e) from e
        messages += encoded
        index += [i] * len(encoded)
    parts = [nlmsg_header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, 0)]
    for n, m in enumerate(messages, start=1):
        flags = NLM_F_REQUEST | m.flags | (NLM_F_ACK if n == len(messages) else 0)
        kind = (NFNL_SUBSYS_NFTABLES << 8) | m.type
        parts.append(nlmsg_header(kind, flags, seq + n, NFPROTO_IPV4, 0, len(m.attrs)) + m.attrs)
    end = seq + len(messages) + 1
    parts.append(nlmsg_header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, 0))
    return Batch(b"".join(parts), seq, tuple(index))


def encode(
    ops: Iterable[ir.Op], seq: int = 1, sets: Mapping[tuple[str, str], ir.SetDef] | None = None
) -> bytes:
    """The whole batch as bytes (pure)."""
    return encode_batch(ops, seq, sets).data
