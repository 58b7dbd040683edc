"""Netlink attribute packing and the nf_tables data values (keys, addresses, verdicts) of the
encoder. Pure; names are checked once (nft's identifier rules, net/nft/text.py) and remembered.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence

from . import ir
from .text import ct_states, name
from .uapi import (
    ADDRTYPES,
    CT_BITS,
    DATA_VALUE,
    DATA_VERDICT,
    NLA_F_NESTED,
    PROTOS,
    VERDICT_CHAIN,
    VERDICT_CODE,
    VERDICT_CODES,
)

# ---- attribute packing ---------------------------------------------------------------------


NLA_HEAD = struct.Struct("=HH").pack  # nla_len, nla_type
_BE32 = struct.Struct(">I").pack
BE16 = struct.Struct(">H").pack
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by len % 4


def nla(kind: int, payload: bytes) -> bytes:
    n = len(payload)
    return NLA_HEAD(4 + n, kind) + payload + _PAD[n & 3]


def nla_nest(kind: int, *children: bytes) -> bytes:
    body = b"".join(children)  # children are padded: no padding after them
    return NLA_HEAD(4 + len(body), kind | NLA_F_NESTED) + body


def nla_u32(kind: int, value: int) -> bytes:
    return NLA_HEAD(8, kind) + _BE32(value & 0xFFFFFFFF)


def str_attr(kind: int, value: str) -> bytes:
    return nla(kind, value.encode() + b"\0")


_VALID: set[str] = set()  # names text.name accepted
_NAME_ATTRS: dict[int, dict[str, bytes]] = {}  # attribute type -> name -> attribute
NAMES_MAX = 1 << 18  # names churn with Services: start over rather than grow forever


def name_attr(kind: int, value: str, what: str) -> bytes:
    """str_attr of an nft identifier, checked once (text.name) and then remembered: the same
    table and chain names recur in every message of a batch."""
    attrs = _NAME_ATTRS.get(kind)
    out = attrs.get(value) if attrs is not None else None
    if out is None:
        if value not in _VALID:
            name(value, what)
            if len(_VALID) >= NAMES_MAX:
                _VALID.clear()
                _NAME_ATTRS.clear()
            _VALID.add(value)
        out = str_attr(kind, value)
        _NAME_ATTRS.setdefault(kind, {})[value] = out
    return out


def host32(value: int) -> bytes:
    return struct.pack("=I", value & 0xFFFFFFFF)


def udata(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value))) + value


_SADDR, _DADDR, _PROTO, _DPORT = (
    ir.Field.IP_SADDR,
    ir.Field.IP_DADDR,
    ir.Field.L4PROTO,
    ir.Field.TH_DPORT,
)
_ADDRS: dict[str, bytes] = {}


def ipv4_bytes(text: str) -> bytes | None:
    """The 4 bytes of a dotted quad (remembered), or None when it is not one. inet_pton is
    as strict as ipaddress.IPv4Address (no leading zeros, no short forms)."""
    out = _ADDRS.get(text)
    if out is None:
        try:
            out = socket.inet_pton(socket.AF_INET, text)
        except (OSError, ValueError, TypeError):
            return None
        if len(_ADDRS) >= NAMES_MAX:
            _ADDRS.clear()
        _ADDRS[text] = out
    return out


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
            return host32(ADDRTYPES[text] if text in ADDRTYPES else int(text))
        if field is ir.Field.CT_STATE:
            return host32(sum(CT_BITS[s] for s in set(ct_states(text))))
    except (ValueError, KeyError, struct.error) as e:
        raise ValueError(f"invalid {field.value} value {value!r}: {e}") from None
    raise ValueError(f"unknown field {field!r}")


def set_key(fields: Sequence[ir.Field], values: Sequence[str | int], set_name: str) -> bytes:
    if len(fields) != len(values):
        n = len(fields)
        raise ValueError(f"set {set_name!r}: key {values!r} does not match the set's {n} fields")
    if len(fields) == 1:
        return _key_value(fields[0], values[0])
    return b"".join([_pad4(_key_value(f, v)) for f, v in zip(fields, values, strict=True)])


_PROTO_BYTE = {p: bytes((n,)) for p, n in PROTOS.items()}


def _key_value(field: ir.Field, value: str | int) -> bytes:
    """field_value, with the common spellings of element keys first."""
    if type(value) is str:
        if field is _SADDR or field is _DADDR:
            addr = ipv4_bytes(value)
            if addr is not None:
                return addr
        elif field is _PROTO and value in _PROTO_BYTE:
            return _PROTO_BYTE[value]
    elif field is _DPORT and type(value) is int and 0 <= value < 65536:
        return BE16(value)
    return field_value(field, value)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def data_value(kind: int, value: bytes) -> bytes:
    return nla_nest(kind, nla(DATA_VALUE, value))


def verdict_attr(kind: int, v: ir.Verdict) -> bytes:
    parts = [nla_u32(VERDICT_CODE, VERDICT_CODES[v.kind])]
    if v.kind in (ir.VerdictKind.JUMP, ir.VerdictKind.GOTO):
        if v.chain is None:
            raise ValueError(f"{v.kind.value} needs a chain")
        parts.append(name_attr(VERDICT_CHAIN, v.chain, "chain name"))
    elif v.chain is not None:
        raise ValueError(f"{v.kind.value} takes no chain (got {v.chain!r})")
    return nla_nest(kind, nla_nest(DATA_VERDICT, *parts))
