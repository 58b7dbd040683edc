"""The encoder's hot path: one IR expression as one bytes string, the common shapes spliced from
templates made once with the generic encoders (net/nft/exprs.py); the same bytes, much faster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import ir
from .attrs import BE16, NAMES_MAX, data_value, ipv4_bytes, name_attr, nla_nest, nla_u32, str_attr
from .exprs import cmp_expr, expr_list, expr_messages, expression, load_field, match_cmp
from .uapi import (
    DATA_VERDICT,
    EXPR_DATA,
    EXPR_NAME,
    LIST_ELEM,
    NF_NAT_RANGE_PROTO_SPECIFIED,
    NFPROTO_IPV4,
    NFT_GOTO,
    NFT_JUMP,
    PROTOS,
    REG_1,
    REG_2,
    REG_VERDICT,
    VERDICT_CHAIN,
    VERDICT_CODE,
)

# ---- the hot path: one expression as one bytes string ----------------------------------------
# A full sync encodes ~100k expressions at 10k Services, most of them unique (an endpoint's
# address, a goto to its chain): the common shapes are spliced from templates made once with the
# generic encoders of exprs.py (the bytes are the same, tests/unit/net/nft/test_encode_reference.py
# checks it); anything else goes through expr_messages.

_SADDR, _DADDR, _PROTO, _DPORT = (
    ir.Field.IP_SADDR,
    ir.Field.IP_DADDR,
    ir.Field.L4PROTO,
    ir.Field.TH_DPORT,
)
_JUMP, _GOTO = ir.VerdictKind.JUMP, ir.VerdictKind.GOTO


def _head(encoded: bytes, value_len: int) -> bytes:
    """A template's head: `encoded` without its trailing value of value_len bytes (padded)."""
    return encoded[: len(encoded) - value_len - (-value_len % 4)]


# `ip saddr|daddr <addr>` and `th dport <port>`, by NFT_CMP_EQ / NFT_CMP_NEQ
_CMP_SADDR = tuple(load_field(_SADDR, REG_1) + _head(cmp_expr(op, bytes(4)), 4) for op in (0, 1))
_CMP_DADDR = tuple(load_field(_DADDR, REG_1) + _head(cmp_expr(op, bytes(4)), 4) for op in (0, 1))
_CMP_DPORT = tuple(load_field(_DPORT, REG_1) + _head(cmp_expr(op, bytes(2)), 2) for op in (0, 1))
_CMP_PROTO = tuple(
    {p: b"".join(match_cmp(ir.Cmp(_PROTO, p, bool(op)))) for p in PROTOS} for op in (0, 1)
)
# dnat to <addr>[:<port>]
_IMM_ADDR = _head(expression("immediate", nla_u32(1, REG_1), data_value(2, bytes(4))), 4)
_IMM_PORT = _head(expression("immediate", nla_u32(1, REG_2), data_value(2, bytes(2))), 2)
_NAT_ADDR = expression("nat", nla_u32(1, 1), nla_u32(2, NFPROTO_IPV4), nla_u32(3, REG_1))
_NAT_ADDR_PORT = expression(
    "nat",
    nla_u32(1, 1),
    nla_u32(2, NFPROTO_IPV4),
    nla_u32(3, REG_1),
    nla_u32(5, REG_2),
    nla_u32(7, NF_NAT_RANGE_PROTO_SPECIFIED),
)
# jump/goto <chain>
_IMM_NAME = str_attr(EXPR_NAME, "immediate")
_IMM_VERDICT_REG = nla_u32(1, REG_VERDICT)
_CODE_JUMP, _CODE_GOTO = nla_u32(VERDICT_CODE, NFT_JUMP), nla_u32(VERDICT_CODE, NFT_GOTO)


def _fast_cmp(e: ir.Cmp) -> bytes | None:
    f, v, op = e.field, e.value, 1 if e.negate else 0
    if f is _SADDR or f is _DADDR:
        addr = ipv4_bytes(v) if type(v) is str else None
        if addr is not None:
            return (_CMP_SADDR if f is _SADDR else _CMP_DADDR)[op] + addr
    elif f is _DPORT:
        if type(v) is int and 0 <= v < 65536:
            return _CMP_DPORT[op] + BE16(v) + b"\0\0"
    elif f is _PROTO and type(v) is str:
        return _CMP_PROTO[op].get(v)
    return None


def jump_data(v: ir.Verdict) -> bytes | None:
    """NFTA_DATA_VERDICT of a jump or goto (None for other verdicts)."""
    k = v.kind
    if (k is _GOTO or k is _JUMP) and v.chain is not None:
        code = _CODE_GOTO if k is _GOTO else _CODE_JUMP
        return nla_nest(DATA_VERDICT, code, name_attr(VERDICT_CHAIN, v.chain, "chain name"))
    return None


def _fast_verdict(e: ir.Verdict) -> bytes | None:
    data = jump_data(e)
    if data is None:
        return None
    return nla_nest(LIST_ELEM, _IMM_NAME, nla_nest(EXPR_DATA, _IMM_VERDICT_REG, nla_nest(2, data)))


def _fast_dnat(e: ir.Dnat) -> bytes | None:
    addr = ipv4_bytes(e.addr)
    if addr is None:
        return None
    port = e.port
    if port is None:
        return _IMM_ADDR + addr + _NAT_ADDR
    if type(port) is int and 0 < port < 65536:
        return _IMM_ADDR + addr + _IMM_PORT + BE16(port) + b"\0\0" + _NAT_ADDR_PORT
    return None


_RANDOMS: dict[tuple[int, int], bytes] = {}


def _fast_random(e: ir.Random) -> bytes:
    """numgen + cmp, remembered per (mod, value): endpoint cascades repeat them."""
    key = (e.mod, e.value)
    out = _RANDOMS.get(key)
    if out is None:
        out = b"".join(expr_list(e))
        if len(_RANDOMS) >= NAMES_MAX:
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
being reused; emptied by forget() when the batch (or op_messages, rule_attrs) is done."""


def forget() -> None:
    """Drop the current batch's identity memo (call when a batch is done)."""
    _SEEN.clear()


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
    if len(_SEEN) >= NAMES_MAX:
        _SEEN.clear()
    _SEEN[id(e)] = (e, out)
    return out
