"""Reading netlink back: a buffer of nfnetlink messages split into messages, and a run of
attributes into (type, payload) pairs. Pure; used for replies and by the tests.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .uapi import NLMSG_DONE, NLMSG_ERROR


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
