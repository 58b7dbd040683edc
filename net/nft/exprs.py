"""nf_tables expressions from the IR: the generic encoders that describe the format (payload
loads, cmp, bitwise, lookup, nat, counters...), as nft 1.0.6 encodes the same text. Pure.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from functools import lru_cache

from . import ir
from .attrs import (
    NAMES_MAX,
    data_value,
    field_value,
    host32,
    name_attr,
    nla,
    nla_nest,
    nla_u32,
    str_attr,
    udata,
    verdict_attr,
)
from .text import comment as _check_comment
from .text import ct_states
from .uapi import (
    EXPR_DATA,
    EXPR_NAME,
    LIST_ELEM,
    NF_NAT_RANGE_PROTO_RANDOM_FULLY,
    NF_NAT_RANGE_PROTO_SPECIFIED,
    NFPROTO_IPV4,
    REG32_00,
    REG_1,
    REG_2,
    REG_VERDICT,
)

# ---- expressions ---------------------------------------------------------------------------


def expression(kind: str, *attrs: bytes) -> bytes:
    return nla_nest(LIST_ELEM, str_attr(EXPR_NAME, kind), nla_nest(EXPR_DATA, *attrs))


def _payload(dreg: int, base: int, offset: int, length: int) -> bytes:
    return expression(
        "payload", nla_u32(1, dreg), nla_u32(2, base), nla_u32(3, offset), nla_u32(4, length)
    )


def cmp_expr(op: int, value: bytes, sreg: int = REG_1) -> bytes:
    return expression("cmp", nla_u32(1, sreg), nla_u32(2, op), data_value(3, value))


def _bitwise(length: int, mask: bytes, xor: bytes) -> bytes:
    return expression(
        "bitwise",
        nla_u32(1, REG_1),
        nla_u32(2, REG_1),
        nla_u32(6, 0),  # NFT_BITWISE_BOOL
        nla_u32(3, length),
        data_value(4, mask),
        data_value(5, xor),
    )


def load_field(field: ir.Field, dreg: int, length: int | None = None) -> bytes:
    """Load a field into dreg (payload, meta, fib or ct), as nft does."""
    if field is ir.Field.IP_SADDR:
        return _payload(dreg, 1, 12, length or 4)
    if field is ir.Field.IP_DADDR:
        return _payload(dreg, 1, 16, length or 4)
    if field is ir.Field.TH_DPORT:
        return _payload(dreg, 2, 2, 2)
    if field is ir.Field.L4PROTO:
        return expression("meta", nla_u32(2, 16), nla_u32(1, dreg))  # NFT_META_L4PROTO
    if field in (ir.Field.FIB_DADDR_TYPE, ir.Field.FIB_SADDR_TYPE):
        flags = 2 if field is ir.Field.FIB_DADDR_TYPE else 1  # NFTA_FIB_F_DADDR / _SADDR
        return expression(
            "fib", nla_u32(3, flags), nla_u32(2, 3), nla_u32(1, dreg)
        )  # RESULT_ADDRTYPE
    if field is ir.Field.CT_STATE:
        return expression("ct", nla_u32(2, 0), nla_u32(1, dreg))  # NFT_CT_STATE
    raise ValueError(f"unknown field {field!r}")


def _load_key(fields: Sequence[ir.Field]) -> list[bytes]:
    """Load a (concatenated) key into consecutive 32-bit registers from REG_1."""
    if not fields:
        raise ValueError("a set lookup needs at least one field")
    return [load_field(f, REG_1 if i == 0 else REG32_00 + i) for i, f in enumerate(fields)]


def match_cmp(e: ir.Cmp) -> list[bytes]:
    op = 1 if e.negate else 0  # NFT_CMP_NEQ / NFT_CMP_EQ
    if e.field in (ir.Field.IP_SADDR, ir.Field.IP_DADDR) and "/" in str(e.value):
        try:
            net = ipaddress.IPv4Network(str(e.value).strip())
        except ValueError as err:
            raise ValueError(f"invalid {e.field.value} value {e.value!r}: {err}") from None
        plen, addr = net.prefixlen, net.network_address.packed
        if plen == 32:
            return [load_field(e.field, REG_1), cmp_expr(op, addr)]
        if plen % 8 == 0 and plen > 0:
            return [load_field(e.field, REG_1, plen // 8), cmp_expr(op, addr[: plen // 8])]
        mask = net.netmask.packed
        return [load_field(e.field, REG_1), _bitwise(4, mask, bytes(4)), cmp_expr(op, addr)]
    value = field_value(e.field, e.value)
    if e.field is ir.Field.CT_STATE and not (e.negate and len(ct_states(e.value)) == 1):
        # `ct state a,b` is "any of": state & bits != 0; `& (a|b) == 0` when negated
        return [
            load_field(e.field, REG_1),
            _bitwise(4, value, bytes(4)),
            cmp_expr(op ^ 1, bytes(4)),
        ]
    return [load_field(e.field, REG_1), cmp_expr(op, value)]


def _mark_load() -> bytes:
    return expression("meta", nla_u32(2, 3), nla_u32(1, REG_1))  # NFT_META_MARK


def _mark_set() -> bytes:
    return expression("meta", nla_u32(2, 3), nla_u32(3, REG_1))


@lru_cache(maxsize=65536)
def expr_messages(e: ir.Expr) -> tuple[bytes, ...]:
    """The kernel expressions (NFTA_LIST_ELEM attributes) for one IR expression (cached:
    rules of a ruleset share most of their expressions)."""
    return tuple(expr_list(e))


def expr_list(e: ir.Expr) -> list[bytes]:
    match e:
        case ir.Cmp():
            return match_cmp(e)
        case ir.MarkTest():
            return [
                _mark_load(),
                _bitwise(4, host32(e.mask), bytes(4)),
                cmp_expr(1 if e.is_set else 0, bytes(4)),
            ]
        case ir.MarkOr():
            mask = host32(~e.bits)
            return [_mark_load(), _bitwise(4, mask, host32(e.bits)), _mark_set()]
        case ir.MarkXor():
            return [_mark_load(), _bitwise(4, host32(~0), host32(e.bits)), _mark_set()]
        case ir.InSet() | ir.VMap():
            fields, set_name = (e.fields, e.set) if isinstance(e, ir.InSet) else (e.fields, e.map)
            attrs = [nla_u32(2, REG_1)]
            if isinstance(e, ir.VMap):
                attrs.append(nla_u32(3, REG_VERDICT))
            attrs.append(name_attr(1, set_name, "set name"))
            if isinstance(e, ir.InSet) and e.negate:
                attrs.append(nla_u32(5, 1))  # NFT_LOOKUP_F_INV
            return [*_load_key(fields), expression("lookup", *attrs)]
        case ir.Random():
            if e.mod <= 0 or not 0 <= e.value < e.mod:
                raise ValueError(f"numgen random mod {e.mod} == {e.value}: value out of range")
            ng = expression(
                "numgen", nla_u32(1, REG_1), nla_u32(2, e.mod), nla_u32(3, 1), nla_u32(4, 0)
            )
            return [ng, cmp_expr(0, host32(e.value))]
        case ir.SetUpdate():
            dynset = expression(
                "dynset", nla_u32(4, REG_1), nla_u32(3, 1), name_attr(1, e.set, "set name")
            )
            return [load_field(e.field, REG_1), dynset]
        case ir.Verdict():
            return [expression("immediate", nla_u32(1, REG_VERDICT), verdict_attr(2, e))]
        case ir.Dnat():
            out = [expression("immediate", nla_u32(1, REG_1), data_value(2, _addr(e.addr)))]
            nat = [nla_u32(1, 1), nla_u32(2, NFPROTO_IPV4), nla_u32(3, REG_1)]  # NFT_NAT_DNAT
            if e.port is not None:
                if not 0 < e.port < 65536:
                    raise ValueError(f"dnat to {e.addr}:{e.port}: port out of range")
                port = struct.pack(">H", e.port)
                out.append(expression("immediate", nla_u32(1, REG_2), data_value(2, port)))
                nat += [nla_u32(5, REG_2), nla_u32(7, NF_NAT_RANGE_PROTO_SPECIFIED)]
            return [*out, expression("nat", *nat)]
        case ir.Masquerade():
            if e.fully_random:
                return [expression("masq", nla_u32(1, NF_NAT_RANGE_PROTO_RANDOM_FULLY))]
            return [expression("masq")]
        case ir.Reject():
            # NFT_REJECT_ICMP_UNREACH, port unreachable
            return [expression("reject", nla_u32(1, 0), nla(2, b"\x03"))]
    raise TypeError(f"not an nft IR expression: {e!r}")


def _addr(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError as e:
        raise ValueError(f"invalid dnat address {text!r}: {e}") from None


_COMMENTS: dict[tuple[int, str], bytes] = {}


def comment_udata(kind: int, text: str) -> bytes:
    """A comment's userdata (checked as the text renderer checks it; the few comments recur)."""
    key = (kind, text)
    out = _COMMENTS.get(key)
    if out is None:
        _check_comment(text)
        out = udata(kind, text.encode() + b"\0")
        if len(_COMMENTS) >= NAMES_MAX:
            _COMMENTS.clear()
        _COMMENTS[key] = out
    return out
