"""Encode nf_tables IR ops as one NETLINK_NETFILTER batch (the bytes nft 1.0.6 would send).
Pure: bytes out, plus decode()/parse_attrs() to read batches and replies back.
"""

# Facts from the kernel uapi (linux/netfilter/nf_tables.h, nfnetlink.h) and from what
# `nft --debug=netlink,mnl` sends for the same text, so that `nft list` prints our objects
# exactly as if nft had loaded them (set userdata, register choice, prefix matches).
# Speed (a full sync at 10k Services is ~100k ops): the generic encoders below describe the
# format; the hot path splices the common expressions from templates made with them, checks
# each name once, and writes the batch in one pass (see "the hot path").

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from . import ir
from .nogc import no_gc
from .text import comment as _check_comment
from .text import ct_states, name

# ---- netlink / nfnetlink --------------------------------------------------------------------

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
NFNL_MSG_BATCH_BEGIN = 16
NFNL_MSG_BATCH_END = 17
NFNL_SUBSYS_NFTABLES = 10
NFPROTO_IPV4 = 2

# NFT_MSG_*
NEWTABLE, GETTABLE, DELTABLE = 0, 1, 2
NEWCHAIN, GETCHAIN, DELCHAIN = 3, 4, 5
NEWRULE, GETRULE, DELRULE = 6, 7, 8
NEWSET, GETSET, DELSET = 9, 10, 11
NEWSETELEM, GETSETELEM, DELSETELEM = 12, 13, 14

# registers, verdicts
REG_VERDICT, REG_1, REG_2, REG32_00 = 0, 1, 2, 8
NF_DROP, NF_ACCEPT = 0, 1
NFT_CONTINUE, NFT_JUMP, NFT_GOTO, NFT_RETURN = -1, -3, -4, -5
_VERDICT_CODE = {
    ir.VerdictKind.ACCEPT: NF_ACCEPT,
    ir.VerdictKind.DROP: NF_DROP,
    ir.VerdictKind.RETURN: NFT_RETURN,
    ir.VerdictKind.JUMP: NFT_JUMP,
    ir.VerdictKind.GOTO: NFT_GOTO,
}
_HOOK = {
    ir.Hook.PREROUTING: 0,
    ir.Hook.INPUT: 1,
    ir.Hook.FORWARD: 2,
    ir.Hook.OUTPUT: 3,
    ir.Hook.POSTROUTING: 4,
}

# NFTA_* attributes (per object)
TABLE_NAME, TABLE_FLAGS = 1, 2
CHAIN_TABLE, CHAIN_NAME, CHAIN_HOOK, CHAIN_POLICY, CHAIN_TYPE, CHAIN_USERDATA = 1, 3, 4, 5, 7, 12
HOOK_HOOKNUM, HOOK_PRIORITY = 1, 2
RULE_TABLE, RULE_CHAIN, RULE_EXPRESSIONS, RULE_USERDATA = 1, 2, 4, 7
SET_TABLE, SET_NAME, SET_FLAGS, SET_KEY_TYPE, SET_KEY_LEN = 1, 2, 3, 4, 5
SET_DATA_TYPE, SET_DATA_LEN, SET_ID, SET_TIMEOUT, SET_USERDATA = 6, 7, 10, 11, 13
SET_ELEM_LIST_TABLE, SET_ELEM_LIST_SET, SET_ELEM_LIST_ELEMENTS = 1, 2, 3
SET_ELEM_KEY, SET_ELEM_DATA = 1, 2
LIST_ELEM = 1
DATA_VALUE, DATA_VERDICT = 1, 2
VERDICT_CODE, VERDICT_CHAIN = 1, 2
EXPR_NAME, EXPR_DATA = 1, 2

NFT_SET_ANONYMOUS, NFT_SET_MAP, NFT_SET_TIMEOUT, NFT_SET_EVAL = 0x1, 0x8, 0x10, 0x20
NFT_DATA_VERDICT_TYPE = 0xFFFFFF00
NF_NAT_RANGE_PROTO_SPECIFIED = 0x2
NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x10

# nft's datatypes (TYPE_BITS 6 per concatenated field), lengths and byte order
_TYPE_ID = {
    "ipv4_addr": 7,
    "inet_proto": 12,
    "inet_service": 13,
    "ct_state": 26,
    "fib_addrtype": 38,
}
BYTEORDER_INVALID, BYTEORDER_HOST, BYTEORDER_BIG = 0, 1, 2


class _FieldInfo(NamedTuple):
    type_name: str
    length: int  # bytes in a register / set key
    byteorder: int


_FIELD = {
    ir.Field.IP_SADDR: _FieldInfo("ipv4_addr", 4, BYTEORDER_BIG),
    ir.Field.IP_DADDR: _FieldInfo("ipv4_addr", 4, BYTEORDER_BIG),
    ir.Field.L4PROTO: _FieldInfo("inet_proto", 1, BYTEORDER_INVALID),
    ir.Field.TH_DPORT: _FieldInfo("inet_service", 2, BYTEORDER_BIG),
    ir.Field.FIB_DADDR_TYPE: _FieldInfo("fib_addrtype", 4, BYTEORDER_HOST),
    ir.Field.FIB_SADDR_TYPE: _FieldInfo("fib_addrtype", 4, BYTEORDER_HOST),
    ir.Field.CT_STATE: _FieldInfo("ct_state", 4, BYTEORDER_HOST),
}
_PROTOS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
_ADDRTYPES = {
    "unspec": 0,
    "unicast": 1,
    "local": 2,
    "broadcast": 3,
    "anycast": 4,
    "multicast": 5,
    "blackhole": 6,
    "unreachable": 7,
    "prohibit": 8,
}
_CT_BITS = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
# What nft 1.0.6 puts in a concatenated set key's userdata (NFTNL_UDATA_SET_KEY_TYPEOF).
_CONCAT_UDATA = bytes.fromhex("030800040d0000000100")

# ---- attribute packing ---------------------------------------------------------------------


_HEAD = struct.Struct("=HH").pack  # nla_len, nla_type
_BE32 = struct.Struct(">I").pack
_BE16 = struct.Struct(">H").pack
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by len % 4


def _attr(kind: int, payload: bytes) -> bytes:
    n = len(payload)
    return _HEAD(4 + n, kind) + payload + _PAD[n & 3]


def _nest(kind: int, *children: bytes) -> bytes:
    body = b"".join(children)  # children are padded: no padding after them
    return _HEAD(4 + len(body), kind | NLA_F_NESTED) + body


def _u32(kind: int, value: int) -> bytes:
    return _HEAD(8, kind) + _BE32(value & 0xFFFFFFFF)


def str_attr(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


_VALID: set[str] = set()  # names text.name accepted
_NAME_ATTRS: dict[int, dict[str, bytes]] = {}  # attribute type -> name -> attribute
_NAMES_MAX = 1 << 18  # names churn with Services: start over rather than grow forever


def _name_attr(kind: int, value: str, what: str) -> bytes:
    """str_attr of an nft identifier, checked once (text.name) and then remembered: the same
    table and chain names recur in every message of a batch."""
    attrs = _NAME_ATTRS.get(kind)
    out = attrs.get(value) if attrs is not None else None
    if out is None:
        if value not in _VALID:
            name(value, what)
            if len(_VALID) >= _NAMES_MAX:
                _VALID.clear()
                _NAME_ATTRS.clear()
            _VALID.add(value)
        out = str_attr(kind, value)
        _NAME_ATTRS.setdefault(kind, {})[value] = out
    return out


def _host32(value: int) -> bytes:
    return struct.pack("=I", value & 0xFFFFFFFF)


def parse_attrs(data: bytes) -> list[tuple[int, bytes]]:
    """The (type without flags, payload) pairs of a run of netlink attributes."""
    out = []
    i = 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        if length < 4:
            break
        out.append((kind & 0x3FFF, data[i + 4 : i + length]))
        i += (length + 3) & ~3
    return out


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
            proto = _PROTOS[text] if text in _PROTOS else int(text)
            return struct.pack("B", proto)
        if field is ir.Field.TH_DPORT:
            return struct.pack(">H", int(text))
        if field in (ir.Field.FIB_DADDR_TYPE, ir.Field.FIB_SADDR_TYPE):
            return _host32(_ADDRTYPES[text] if text in _ADDRTYPES else int(text))
        if field is ir.Field.CT_STATE:
            return _host32(sum(_CT_BITS[s] for s in set(ct_states(text))))
    except (ValueError, KeyError, struct.error) as e:
        raise ValueError(f"invalid {field.value} value {value!r}: {e}") from None
    raise ValueError(f"unknown field {field!r}")


def _key(fields: Sequence[ir.Field], values: Sequence[str | int], set_name: str) -> bytes:
    if len(fields) != len(values):
        n = len(fields)
        raise ValueError(f"set {set_name!r}: key {values!r} does not match the set's {n} fields")
    if len(fields) == 1:
        return _key_value(fields[0], values[0])
    return b"".join([_pad4(_key_value(f, v)) for f, v in zip(fields, values, strict=True)])


_PROTO_BYTE = {p: bytes((n,)) for p, n in _PROTOS.items()}


def _key_value(field: ir.Field, value: str | int) -> bytes:
    """field_value, with the common spellings of element keys first."""
    if type(value) is str:
        if field is _SADDR or field is _DADDR:
            addr = _ipv4(value)
            if addr is not None:
                return addr
        elif field is _PROTO and value in _PROTO_BYTE:
            return _PROTO_BYTE[value]
    elif field is _DPORT and type(value) is int and 0 <= value < 65536:
        return _BE16(value)
    return field_value(field, value)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _data_value(kind: int, value: bytes) -> bytes:
    return _nest(kind, _attr(DATA_VALUE, value))


def _verdict(kind: int, v: ir.Verdict) -> bytes:
    parts = [_u32(VERDICT_CODE, _VERDICT_CODE[v.kind])]
    if v.kind in (ir.VerdictKind.JUMP, ir.VerdictKind.GOTO):
        if v.chain is None:
            raise ValueError(f"{v.kind.value} needs a chain")
        parts.append(_name_attr(VERDICT_CHAIN, v.chain, "chain name"))
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


@lru_cache(maxsize=65536)
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
            attrs.append(_name_attr(1, set_name, "set name"))
            if isinstance(e, ir.InSet) and e.negate:
                attrs.append(_u32(5, 1))  # NFT_LOOKUP_F_INV
            return [*_load_key(fields), _expr("lookup", *attrs)]
        case ir.Random():
            if e.mod <= 0 or not 0 <= e.value < e.mod:
                raise ValueError(f"numgen random mod {e.mod} == {e.value}: value out of range")
            ng = _expr("numgen", _u32(1, REG_1), _u32(2, e.mod), _u32(3, 1), _u32(4, 0))
            return [ng, _cmp(0, _host32(e.value))]
        case ir.SetUpdate():
            dynset = _expr("dynset", _u32(4, REG_1), _u32(3, 1), _name_attr(1, e.set, "set name"))
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


_COMMENTS: dict[tuple[int, str], bytes] = {}


def _comment_udata(kind: int, text: str) -> bytes:
    """A comment's userdata (checked as the text renderer checks it; the few comments recur)."""
    key = (kind, text)
    out = _COMMENTS.get(key)
    if out is None:
        _check_comment(text)
        out = _udata(kind, text.encode() + b"\0")
        if len(_COMMENTS) >= _NAMES_MAX:
            _COMMENTS.clear()
        _COMMENTS[key] = out
    return out


# ---- the hot path: one expression as one bytes string ----------------------------------------
# A full sync encodes ~100k expressions at 10k Services, most of them unique (an endpoint's
# address, a goto to its chain): the common shapes are spliced from templates made once with the
# generic encoders above (the bytes are the same, tests/unit/net/nft/test_encode_reference.py
# checks it); anything else goes through expr_messages.

_SADDR, _DADDR, _PROTO, _DPORT = (
    ir.Field.IP_SADDR,
    ir.Field.IP_DADDR,
    ir.Field.L4PROTO,
    ir.Field.TH_DPORT,
)
_JUMP, _GOTO = ir.VerdictKind.JUMP, ir.VerdictKind.GOTO
_ADDRS: dict[str, bytes] = {}


def _head(encoded: bytes, value_len: int) -> bytes:
    """A template's head: `encoded` without its trailing value of value_len bytes (padded)."""
    return encoded[: len(encoded) - value_len - (-value_len % 4)]


def _ipv4(text: str) -> bytes | None:
    """The 4 bytes of a dotted quad (remembered), or None when it is not one. inet_pton is
    as strict as ipaddress.IPv4Address (no leading zeros, no short forms)."""
    out = _ADDRS.get(text)
    if out is None:
        try:
            out = socket.inet_pton(socket.AF_INET, text)
        except (OSError, ValueError, TypeError):
            return None
        if len(_ADDRS) >= _NAMES_MAX:
            _ADDRS.clear()
        _ADDRS[text] = out
    return out


# `ip saddr|daddr <addr>` and `th dport <port>`, by NFT_CMP_EQ / NFT_CMP_NEQ
_CMP_SADDR = tuple(_load(_SADDR, REG_1) + _head(_cmp(op, bytes(4)), 4) for op in (0, 1))
_CMP_DADDR = tuple(_load(_DADDR, REG_1) + _head(_cmp(op, bytes(4)), 4) for op in (0, 1))
_CMP_DPORT = tuple(_load(_DPORT, REG_1) + _head(_cmp(op, bytes(2)), 2) for op in (0, 1))
_CMP_PROTO = tuple(
    {p: b"".join(_match_cmp(ir.Cmp(_PROTO, p, bool(op)))) for p in _PROTOS} for op in (0, 1)
)
# dnat to <addr>[:<port>]
_IMM_ADDR = _head(_expr("immediate", _u32(1, REG_1), _data_value(2, bytes(4))), 4)
_IMM_PORT = _head(_expr("immediate", _u32(1, REG_2), _data_value(2, bytes(2))), 2)
_NAT_ADDR = _expr("nat", _u32(1, 1), _u32(2, NFPROTO_IPV4), _u32(3, REG_1))
_NAT_ADDR_PORT = _expr(
    "nat",
    _u32(1, 1),
    _u32(2, NFPROTO_IPV4),
    _u32(3, REG_1),
    _u32(5, REG_2),
    _u32(7, NF_NAT_RANGE_PROTO_SPECIFIED),
)
# jump/goto <chain>
_IMM_NAME = str_attr(EXPR_NAME, "immediate")
_IMM_VERDICT_REG = _u32(1, REG_VERDICT)
_CODE_JUMP, _CODE_GOTO = _u32(VERDICT_CODE, NFT_JUMP), _u32(VERDICT_CODE, NFT_GOTO)


def _fast_cmp(e: ir.Cmp) -> bytes | None:
    f, v, op = e.field, e.value, 1 if e.negate else 0
    if f is _SADDR or f is _DADDR:
        addr = _ipv4(v) if type(v) is str else None
        if addr is not None:
            return (_CMP_SADDR if f is _SADDR else _CMP_DADDR)[op] + addr
    elif f is _DPORT:
        if type(v) is int and 0 <= v < 65536:
            return _CMP_DPORT[op] + _BE16(v) + b"\0\0"
    elif f is _PROTO and type(v) is str:
        return _CMP_PROTO[op].get(v)
    return None


def _jump_data(v: ir.Verdict) -> bytes | None:
    """NFTA_DATA_VERDICT of a jump or goto (None for other verdicts)."""
    k = v.kind
    if (k is _GOTO or k is _JUMP) and v.chain is not None:
        code = _CODE_GOTO if k is _GOTO else _CODE_JUMP
        return _nest(DATA_VERDICT, code, _name_attr(VERDICT_CHAIN, v.chain, "chain name"))
    return None


def _fast_verdict(e: ir.Verdict) -> bytes | None:
    data = _jump_data(e)
    if data is None:
        return None
    return _nest(LIST_ELEM, _IMM_NAME, _nest(EXPR_DATA, _IMM_VERDICT_REG, _nest(2, data)))


def _fast_dnat(e: ir.Dnat) -> bytes | None:
    addr = _ipv4(e.addr)
    if addr is None:
        return None
    port = e.port
    if port is None:
        return _IMM_ADDR + addr + _NAT_ADDR
    if type(port) is int and 0 < port < 65536:
        return _IMM_ADDR + addr + _IMM_PORT + _BE16(port) + b"\0\0" + _NAT_ADDR_PORT
    return None


_RANDOMS: dict[tuple[int, int], bytes] = {}


def _fast_random(e: ir.Random) -> bytes:
    """numgen + cmp, remembered per (mod, value): endpoint cascades repeat them."""
    key = (e.mod, e.value)
    out = _RANDOMS.get(key)
    if out is None:
        out = b"".join(_expr_messages(e))
        if len(_RANDOMS) >= _NAMES_MAX:
            _RANDOMS.clear()
        _RANDOMS[key] = out
    return out


_FAST: dict[type, Callable[[Any], bytes | None]] = {
    ir.Cmp: _fast_cmp,
    ir.Verdict: _fast_verdict,
    ir.Dnat: _fast_dnat,
    ir.Random: _fast_random,
}


_SEEN: dict[int, tuple[ir.Expr, bytes]] = {}
"""Expressions encoded by the current batch, by identity (the rule model shares one object for
`jump mark-for-masquerade`, `meta l4proto tcp`...). Holding the expression keeps its id from
being reused; emptied when the batch (or op_messages, rule_attrs) is done."""


def expr_bytes(e: ir.Expr) -> bytes:
    """The kernel expressions of one IR expression, joined (same bytes as expr_messages)."""
    if type(e) is ir.Cmp:  # the most common, and as cheap as remembering
        out = _fast_cmp(e)
        if out is not None:
            return out
    seen = _SEEN.get(id(e))
    if seen is not None:
        return seen[1]
    fast = _FAST.get(type(e))
    out = fast(e) if fast is not None else None
    if out is None:
        out = b"".join(expr_messages(e))
    if len(_SEEN) >= _NAMES_MAX:
        _SEEN.clear()
    _SEEN[id(e)] = (e, out)
    return out


# ---- ops -> messages -----------------------------------------------------------------------


class Message(NamedTuple):
    """One nf_tables message of a batch: NFT_MSG_* type, NLM_F_* flags, attributes."""

    type: int
    flags: int
    attrs: bytes


def _set_udata(s: ir.SetDef) -> bytes:
    infos = [_FIELD[f] for f in s.key]
    out = _udata(0, _host32(infos[0].byteorder if len(infos) == 1 else 0))
    if s.verdict_map:
        out += _udata(1, _host32(0))
    if len(infos) > 1:
        out += _CONCAT_UDATA
    if s.verdict_map:
        out += _udata(6, _host32(0))
    if s.comment is not None:
        out += _comment_udata(7, s.comment)
    return out


def _set_attrs(table: bytes, s: ir.SetDef, set_id: int) -> bytes:
    if not s.key:
        raise ValueError(f"set {s.name!r} needs a key")
    infos = [_FIELD[f] for f in s.key]
    key_type = 0
    for info in infos:
        key_type = (key_type << 6) | _TYPE_ID[info.type_name]
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
        _name_attr(SET_NAME, s.name, "set name"),
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
    key = _key(keyfields, e.key, set_name)
    parts = [_nest(SET_ELEM_KEY, _attr(DATA_VALUE, key))]
    if data and e.verdict is not None:
        jump = _jump_data(e.verdict)
        if jump is not None:
            parts.append(_nest(SET_ELEM_DATA, jump))
        else:
            parts.append(_verdict(SET_ELEM_DATA, e.verdict))
    return _nest(LIST_ELEM, *parts)


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
    head = table + _name_attr(SET_ELEM_LIST_SET, set_name, "set name")
    flags = NLM_F_CREATE if kind == NEWSETELEM else 0
    out: list[Message] = []
    chunk: list[bytes] = []
    size = 0
    data = kind == NEWSETELEM
    for e in elements:
        b = _element(fields, set_name, e, data)
        if chunk and size + len(b) > ELEMENTS_PER_MESSAGE_BYTES:
            out.append(Message(kind, flags, head + _nest(SET_ELEM_LIST_ELEMENTS, *chunk)))
            chunk, size = [], 0
        chunk.append(b)
        size += len(b)
    out.append(Message(kind, flags, head + _nest(SET_ELEM_LIST_ELEMENTS, *chunk)))
    return out


def _chain_attrs(table: bytes, chain: ir.Chain) -> bytes:
    parts = [table, _name_attr(CHAIN_NAME, chain.name, "chain name")]
    if chain.base is not None:
        b = chain.base
        hook = _nest(CHAIN_HOOK, _u32(HOOK_HOOKNUM, _HOOK[b.hook]), _u32(HOOK_PRIORITY, b.priority))
        parts += [str_attr(CHAIN_TYPE, b.type.value), _u32(CHAIN_POLICY, NF_ACCEPT), hook]
    if chain.comment is not None:
        parts.append(_attr(CHAIN_USERDATA, _comment_udata(0, chain.comment)))
    return b"".join(parts)


def _rule_attrs(table: bytes, chain: str, rule: ir.Rule) -> bytes:
    exprs = b"".join([expr_bytes(e) for e in rule.exprs])
    if not exprs:
        raise ValueError(f"rule in chain {chain!r}: no expressions")
    out = (
        table
        + _name_attr(RULE_CHAIN, chain, "chain name")
        + _HEAD(4 + len(exprs), RULE_EXPRESSIONS | NLA_F_NESTED)
        + exprs
    )
    if rule.comment is not None:
        out += _attr(RULE_USERDATA, _comment_udata(0, rule.comment))
    return out


def rule_attrs(table: str, chain: str, rule: ir.Rule) -> bytes:
    """NEWRULE attributes: table, chain, the expressions and the comment (userdata)."""
    try:
        return _rule_attrs(_table_attr(table), chain, rule)
    finally:
        _SEEN.clear()


def _table_attr(table: str) -> bytes:
    """NFTA_{TABLE,CHAIN,RULE,SET,SET_ELEM_LIST}_TABLE: each object's table is attribute 1."""
    return _name_attr(TABLE_NAME, table, "table name")


def _table_name(table: bytes) -> str:
    return table[4:].rstrip(b"\0").decode()


# The ops of one message each: their attributes from (op, table attribute, set id)


def _table_only(op: ir.DeleteTable | ir.FlushTable, table: bytes, _set_id: int) -> bytes:
    return table


def _add_table(op: ir.AddTable, table: bytes, _set_id: int) -> bytes:
    return table + _u32(TABLE_FLAGS, 0)


def _add_chain(op: ir.AddChain, table: bytes, _set_id: int) -> bytes:
    return _chain_attrs(table, op.chain)


def _flush_chain(op: ir.FlushChain, table: bytes, _set_id: int) -> bytes:
    return table + _name_attr(RULE_CHAIN, op.chain, "chain name")


def _delete_chain(op: ir.DeleteChain, table: bytes, _set_id: int) -> bytes:
    return table + _name_attr(CHAIN_NAME, op.chain, "chain name")


def _add_rule(op: ir.AddRule, table: bytes, _set_id: int) -> bytes:
    return _rule_attrs(table, op.chain, op.rule)


def _add_set(op: ir.AddSet, table: bytes, set_id: int) -> bytes:
    return _set_attrs(table, op.set, set_id)


def _flush_set(op: ir.FlushSet, table: bytes, _set_id: int) -> bytes:
    return table + _name_attr(SET_ELEM_LIST_SET, op.set, "set")


def _delete_set(op: ir.DeleteSet, table: bytes, _set_id: int) -> bytes:
    return table + _name_attr(SET_NAME, op.set, "set name")


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
        _SEEN.clear()


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
        _SEEN.clear()


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


class Decoded(NamedTuple):
    type: int  # full nlmsg_type
    flags: int
    seq: int
    family: int
    res_id: int
    attrs: bytes


def decode(data: bytes) -> list[Decoded]:
    """Split a buffer of nfnetlink messages (a batch, or replies) into its messages."""
    out = []
    i = 0
    while i + 16 <= len(data):
        length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", data, i)
        if length < 16 or i + length > len(data):
            raise ValueError(f"truncated netlink message at offset {i}")
        body = data[i + 16 : i + length]
        if kind in (NLMSG_ERROR, NLMSG_DONE) or len(body) < 4:
            out.append(Decoded(kind, flags, seq, 0, 0, body))
        else:
            family, _version, res_id = struct.unpack_from(">BBH", body)
            out.append(Decoded(kind, flags, seq, family, res_id, body[4:]))
        i += (length + 3) & ~3
    return out


__all__ = [
    "Batch",
    "Decoded",
    "EncodeError",
    "Message",
    "decode",
    "encode",
    "encode_batch",
    "expr_bytes",
    "expr_messages",
    "field_value",
    "op_messages",
    "parse_attrs",
    "rule_attrs",
]
