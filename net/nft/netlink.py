"""Apply nf_tables IR batches over a NETLINK_NETFILTER socket, one atomic transaction each.
Reads the replies, maps errors to ops, and dumps table/chain/set names for stale cleanup.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from . import ir
from .attrs import str_attr
from .decode import Decoded, decode, parse_attrs
from .encode import Batch, EncodeError, encode, encode_batch, nlmsg_header
from .text import op_text
from .uapi import (
    CHAIN_NAME,
    CHAIN_TABLE,
    GETCHAIN,
    GETSET,
    GETTABLE,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO_IPV4,
    NFT_SET_ANONYMOUS,
    NFT_SET_MAP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SET_FLAGS,
    SET_KEY_TYPE,
    SET_NAME,
    SET_TABLE,
    TABLE_NAME,
)

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLM_F_DUMP = 0x300
NLM_F_ACK_TLVS = 0x200  # in an error reply
NLMSGERR_ATTR_MSG = 1
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # asm-generic/socket.h


class NftError(Exception):
    """The kernel refused a batch (nothing of it was committed)."""

    def __init__(self, message: str, op: ir.Op | None, code: int) -> None:
        super().__init__(message)
        self.op = op  # the refused op, when the kernel named one
        self.errno = code


class _Overrun(NftError):
    """The socket's receive buffer overflowed: the kernel dropped replies (ENOBUFS)."""

    def __init__(self) -> None:
        super().__init__("nf_tables: replies lost (receive buffer overrun)", None, errno.ENOBUFS)


class TableObjects(NamedTuple):
    chains: tuple[str, ...]
    sets: tuple[str, ...]


def describe(op: ir.Op) -> str:
    """A short description naming the op, its table and its chain or set."""
    try:
        text = op_text(op)
    except (ValueError, TypeError):
        text = repr(op)
    return text if len(text) <= 200 else text[:197] + "..."


class NftNetlink:
    """A NETLINK_NETFILTER socket in the current netns: apply() batches, tables() dumps."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self._sock.bind((0, 0))
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                self._sock.setsockopt(SOL_NETLINK, opt, 1)
        except OSError:
            self._sock.close()
            raise
        self._seq = 1
        self._buffers = (0, 0)
        self._sets: dict[tuple[str, str], ir.SetDef] = {}  # key types, for element ops

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NftNetlink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def apply(self, ops: Sequence[ir.Op]) -> None:
        """Apply ops as one nf_tables transaction; NftError (nothing committed) if refused."""
        ops = list(ops)
        if not ops:
            return
        try:
            batch = encode_batch(ops, self._next_seq(0), self._set_defs(ops))
        except EncodeError as e:
            msg = f"nf_tables batch not sent: {e}; nothing was changed"
            raise NftError(msg, e.op, errno.EINVAL) from e
        self._seq += len(batch.op_index) + 2
        self._size_buffers(len(batch.data))
        self._drain()  # leftovers of an earlier overrun
        try:
            self._sock.sendall(batch.data)
        except OSError as e:
            msg = f"nf_tables: sending a batch of {len(ops)} ops failed: {e}; nothing was committed"
            raise NftError(msg, None, e.errno or 0) from e
        acks = Acks(batch)
        while not acks.done:
            try:
                acks.feed(self._recv("the batch's acknowledgement"))
            except _Overrun:
                acks.lost = True
                acks.feed(self._drain())
                break
        error = acks.error(ops)
        if error is not None:
            raise error
        self._learn(ops)

    def tables(self, prefix: str = "") -> dict[str, TableObjects]:
        """The ip tables whose name starts with prefix, with their chain and named set names."""
        found: dict[str, tuple[list[str], list[str]]] = {}
        for m in self._dump(GETTABLE):
            table = _attr_str(m.attrs, TABLE_NAME)
            if table.startswith(prefix):
                found[table] = ([], [])
        for m in self._dump(GETCHAIN):
            table = _attr_str(m.attrs, CHAIN_TABLE)
            if table in found:
                found[table][0].append(_attr_str(m.attrs, CHAIN_NAME))
        for m in self._dump(GETSET):
            table = _attr_str(m.attrs, SET_TABLE)
            if table in found and not _attr_u32(m.attrs, SET_FLAGS) & NFT_SET_ANONYMOUS:
                found[table][1].append(_attr_str(m.attrs, SET_NAME))
        return {t: TableObjects(tuple(c), tuple(s)) for t, (c, s) in found.items()}

    # -- internals

    def _next_seq(self, count: int) -> int:
        if self._seq > 1 << 31:  # sequence numbers are 32 bits; start over long before
            self._seq = 1
        seq = self._seq
        self._seq += count
        return seq

    def _learn(self, ops: Iterable[ir.Op]) -> None:
        for op in ops:  # type() checks: ~100k ops in a full sync at 10k Services
            if type(op) is ir.AddSet:
                self._sets[(op.table, op.set.name)] = op.set
            elif type(op) is ir.DeleteSet:
                self._sets.pop((op.table, op.set), None)
            elif type(op) is ir.DeleteTable:
                for key in [k for k in self._sets if k[0] == op.table]:
                    del self._sets[key]

    def _set_defs(self, ops: Sequence[ir.Op]) -> dict[tuple[str, str], ir.SetDef]:
        """Definitions of the sets that element ops use and the batch does not add (from the
        cache of sets this object added, else from the kernel)."""
        added = {(op.table, op.set.name) for op in ops if type(op) is ir.AddSet}
        out = {}
        for op in ops:
            if type(op) in _ELEMENT_OPS and isinstance(op, ir.AddElements | ir.DeleteElements):
                key = (op.table, op.set)
                if key in added or key in out:
                    continue
                found = self._sets.get(key) or self._get_set(*key)
                if found is None:
                    raise NftError(
                        f"nf_tables: `{describe(op)}`: no set {op.set!r} in table ip {op.table}",
                        op,
                        errno.ENOENT,
                    )
                out[key] = self._sets[key] = found
        return out

    def _get_set(self, table: str, set_name: str) -> ir.SetDef | None:
        seq = self._next_seq(1)
        attrs = str_attr(SET_TABLE, table) + str_attr(SET_NAME, set_name)
        kind = (NFNL_SUBSYS_NFTABLES << 8) | GETSET
        self._sock.sendall(
            nlmsg_header(kind, NLM_F_REQUEST, seq, NFPROTO_IPV4, 0, len(attrs)) + attrs
        )
        while True:
            for m in self._recv(f"set {set_name!r}"):
                if m.seq != seq:
                    continue
                if m.type == NLMSG_ERROR:
                    return None
                return _set_from_kernel(set_name, m.attrs)

    def _size_buffers(self, send: int) -> None:
        """The whole batch goes in one send; replies are few (errors, one ACK)."""
        snd = max(1 << 20, send + (64 << 10), self._buffers[0])
        rcv = max(4 << 20, self._buffers[1])
        if (snd, rcv) == self._buffers:
            return
        for force, plain, size in (
            (SO_SNDBUFFORCE, socket.SO_SNDBUF, snd),
            (SO_RCVBUFFORCE, socket.SO_RCVBUF, rcv),
        ):
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, force, size)
            except OSError:
                self._sock.setsockopt(socket.SOL_SOCKET, plain, size)
        self._buffers = (snd, rcv)

    def _recv(self, what: str, timeout: float = 10.0) -> list[Decoded]:
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            raise NftError(f"nf_tables: no reply within {timeout}s waiting for {what}", None, 0)
        try:
            return decode(self._sock.recv(1 << 20))
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                raise _Overrun from e
            raise NftError(f"nf_tables: reading {what}: {e}", None, e.errno or 0) from e

    def _drain(self) -> list[Decoded]:
        """Whatever replies are queued now (never blocks)."""
        out: list[Decoded] = []
        while True:
            try:
                out += decode(self._sock.recv(1 << 20, socket.MSG_DONTWAIT))
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise NftError(f"nf_tables: reading replies: {e}", None, e.errno or 0) from e

    def _dump(self, kind: int) -> list[Decoded]:
        seq = self._next_seq(1)
        msg_type = (NFNL_SUBSYS_NFTABLES << 8) | kind
        self._sock.sendall(
            nlmsg_header(msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_IPV4, 0, 0)
        )
        out: list[Decoded] = []
        while True:
            try:
                replies = self._recv("a dump")
            except _Overrun:
                raise NftError("nf_tables: dump lost (receive buffer overrun)", None, 0) from None
            for m in replies:
                if m.seq != seq:
                    continue
                if m.type == NLMSG_DONE:
                    return out
                if m.type == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", m.attrs)[0]
                    if err:
                        raise NftError(f"nf_tables dump failed: {os.strerror(err)}", None, err)
                    return out
                out.append(m)


_ELEMENT_OPS = (ir.AddElements, ir.DeleteElements)


class Acks:
    """The replies to one batch (pure). The last op message asks for an ACK; any refused
    message gets an error reply; a batch refused as a whole (at commit, or out of memory) gets
    one error naming BATCH_BEGIN's sequence number. The kernel handles the whole batch inside
    the send call, so every reply is queued by the time send returns."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.last = batch.seq + len(batch.op_index)
        self.done = not batch.op_index
        self.lost = False  # replies dropped (receive buffer overrun): only error replies can be
        self.errors: list[tuple[int, int, str]] = []  # (seq, errno, extended ack message)

    def feed(self, replies: Iterable[Decoded]) -> None:
        for m in replies:
            if m.type != NLMSG_ERROR or len(m.attrs) < 20:
                continue
            err = -struct.unpack_from("=i", m.attrs)[0]
            seq = struct.unpack_from("=I", m.attrs, 12)[0]
            if not self.batch.seq <= seq <= self.last:
                continue  # not ours (an earlier batch's)
            if err:
                self.errors.append((seq, err, _ext_msg(m)))
            if seq in (self.batch.seq, self.last):
                self.done = True

    def error(self, ops: Sequence[ir.Op]) -> NftError | None:
        """The NftError for the first refused message (naming its op), or None."""
        if not self.errors:
            if self.lost:  # only errors are sent unasked; the first ones would have fitted
                msg = "nf_tables: replies to the batch were lost (receive buffer overrun)"
                return NftError(msg + "; the batch was refused", None, errno.ENOBUFS)
            return None
        seq, err, ext = min(self.errors)
        detail = os.strerror(err) + (f" ({ext})" if ext else "")
        if seq == self.batch.seq:
            msg = f"nf_tables refused the whole batch of {len(ops)} ops: {detail}"
            return NftError(msg + "; nothing was committed", None, err)
        i = self.batch.op_index[seq - self.batch.seq - 1]
        at_least = "at least " if self.lost else ""
        more = (
            f" (and {at_least}{len(self.errors) - 1} more errors)" if len(self.errors) > 1 else ""
        )
        msg = f"nf_tables refused op #{i} `{describe(ops[i])}`: {detail}{more}"
        return NftError(msg + "; nothing of the batch was committed", ops[i], err)


_FIELD_OF_TYPE = {
    7: ir.Field.IP_DADDR,
    12: ir.Field.L4PROTO,
    13: ir.Field.TH_DPORT,
    26: ir.Field.CT_STATE,
    38: ir.Field.FIB_DADDR_TYPE,
}


def _set_from_kernel(set_name: str, attrs: bytes) -> ir.SetDef | None:
    """A SetDef good enough to encode element keys, from a NEWSET message."""
    key_type = _attr_u32(attrs, SET_KEY_TYPE)
    fields: list[ir.Field] = []
    while key_type:
        field = _FIELD_OF_TYPE.get(key_type & 63)
        if field is None:
            return None
        fields.insert(0, field)
        key_type >>= 6
    verdict_map = bool(_attr_u32(attrs, SET_FLAGS) & NFT_SET_MAP)
    return ir.SetDef(set_name, tuple(fields), verdict_map=verdict_map) if fields else None


def _attr_u32(attrs: bytes, kind: int) -> int:
    for k, v in parse_attrs(attrs):
        if k == kind and len(v) == 4:
            return int(struct.unpack(">I", v)[0])
    return 0


def _attr_str(attrs: bytes, kind: int) -> str:
    for k, v in parse_attrs(attrs):
        if k == kind:
            return v.rstrip(b"\0").decode(errors="replace")
    return ""


def _ext_msg(m: Decoded) -> str:
    if not m.flags & NLM_F_ACK_TLVS:
        return ""
    return _attr_str(m.attrs[20:], NLMSGERR_ATTR_MSG)


__all__ = [
    "Acks",
    "NftError",
    "NftNetlink",
    "TableObjects",
    "describe",
    "encode",
]
