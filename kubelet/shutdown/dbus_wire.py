"""The D-Bus wire format, pure: signatures, marshalling with the spec's alignment rules, and
whole messages (header fields, body, unix-fd count). Enough of the spec for logind and systemd
calls, signals and replies; no sockets here (dbus.py owns the connection).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

PROTOCOL_VERSION = 1
MAX_MESSAGE = 128 * 1024 * 1024
"""The spec's upper bound on a message (2^27 bytes)."""


class DBusWireError(ValueError):
    """A message or signature that breaks the D-Bus specification."""


class MessageType(IntEnum):
    METHOD_CALL = 1
    METHOD_RETURN = 2
    ERROR = 3
    SIGNAL = 4


NO_REPLY_EXPECTED = 0x1


class Field(IntEnum):
    """Header field codes and, below, the type each one carries."""

    PATH = 1
    INTERFACE = 2
    MEMBER = 3
    ERROR_NAME = 4
    REPLY_SERIAL = 5
    DESTINATION = 6
    SENDER = 7
    SIGNATURE = 8
    UNIX_FDS = 9


_FIELD_TYPES = {
    Field.PATH: "o",
    Field.INTERFACE: "s",
    Field.MEMBER: "s",
    Field.ERROR_NAME: "s",
    Field.REPLY_SERIAL: "u",
    Field.DESTINATION: "s",
    Field.SENDER: "s",
    Field.SIGNATURE: "g",
    Field.UNIX_FDS: "u",
}
_FIXED = {
    "y": ("B", 1),
    "b": ("I", 4),
    "n": ("h", 2),
    "q": ("H", 2),
    "i": ("i", 4),
    "u": ("I", 4),
    "x": ("q", 8),
    "t": ("Q", 8),
    "d": ("d", 8),
    "h": ("I", 4),
}
_ALIGN = {**{k: size for k, (_, size) in _FIXED.items()}, "s": 4, "o": 4, "g": 1, "v": 1}
_ALIGN.update({"a": 4, "(": 8, "{": 8})


@dataclass(frozen=True)
class Variant:
    """A value with its own signature ('v' on the wire)."""

    signature: str
    value: Any


def split_types(signature: str) -> list[str]:
    """A signature as its complete types: "a{sv}i" -> ["a{sv}", "i"]."""
    out, i = [], 0
    while i < len(signature):
        end = _type_end(signature, i)
        out.append(signature[i:end])
        i = end
    return out


def _type_end(sig: str, i: int) -> int:
    c = sig[i]
    if c in _FIXED or c in "sogv":
        return i + 1
    if c == "a":
        if i + 1 >= len(sig):
            raise DBusWireError(f"signature {sig!r}: array without an element type")
        return _type_end(sig, i + 1)
    if c in "({":
        close, depth, j = ")" if c == "(" else "}", 1, i + 1
        while j < len(sig) and depth:
            if sig[j] == c:
                depth += 1
            elif sig[j] == close:
                depth -= 1
            j += 1
        if depth:
            raise DBusWireError(f"signature {sig!r}: unclosed {c!r}")
        return j
    raise DBusWireError(f"signature {sig!r}: unknown type code {c!r}")


class _Writer:
    def __init__(self, order: str = "<") -> None:
        self.buf = bytearray()
        self.order = order

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def write(self, sig: str, value: Any) -> None:
        c = sig[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            fmt = _FIXED[c][0]
            self.buf += struct.pack(self.order + fmt, bool(value) if c == "b" else value)
        elif c in "so":
            data = str(value).encode()
            self.buf += struct.pack(self.order + "I", len(data)) + data + b"\0"
        elif c == "g":
            data = str(value).encode()
            self.buf += bytes([len(data)]) + data + b"\0"
        elif c == "v":
            if not isinstance(value, Variant):
                raise DBusWireError(f"a 'v' value must be a Variant, got {type(value).__name__}")
            self.write("g", value.signature)
            self.write(value.signature, value.value)
        elif c == "a":
            self._array(sig[1:], value)
        else:
            self.write_all(sig[1:-1], value.items() if isinstance(value, dict) else value)

    def write_all(self, signature: str, values: Any) -> None:
        types, items = split_types(signature), list(values)
        if len(types) != len(items):
            raise DBusWireError(f"signature {signature!r} needs {len(types)} values, got {items}")
        for t, v in zip(types, items, strict=True):
            self.write(t, v)

    def _array(self, element: str, value: Any) -> None:
        at = len(self.buf)
        self.buf += b"\0\0\0\0"
        self.pad(_ALIGN[element[0]])
        start = len(self.buf)
        items = value.items() if element[0] == "{" and isinstance(value, dict) else value
        for item in items:
            self.write(element, item)
        struct.pack_into(self.order + "I", self.buf, at, len(self.buf) - start)


class _Reader:
    def __init__(self, data: bytes, order: str = "<", pos: int = 0) -> None:
        self.data, self.order, self.pos = data, order, pos

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DBusWireError("message ends inside a value")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def read(self, sig: str) -> Any:
        c = sig[0]
        self.align(_ALIGN[c])
        if c in _FIXED:
            fmt, size = _FIXED[c]
            (value,) = struct.unpack(self.order + fmt, self.take(size))
            return bool(value) if c == "b" else value
        if c in "so":
            (n,) = struct.unpack(self.order + "I", self.take(4))
            text = self.take(n + 1)[:-1].decode()
            return text
        if c == "g":
            return self.take(self.take(1)[0] + 1)[:-1].decode()
        if c == "v":
            inner = self.read("g")
            return Variant(inner, self.read(inner))
        if c == "a":
            return self._array(sig[1:])
        return tuple(self.read(t) for t in split_types(sig[1:-1]))

    def _array(self, element: str) -> Any:
        (n,) = struct.unpack(self.order + "I", self.take(4))
        self.align(_ALIGN[element[0]])
        end, items = self.pos + n, []
        while self.pos < end:
            items.append(self.read(element))
        return dict(items) if element[0] == "{" else items


def marshal(signature: str, values: Sequence[Any]) -> bytes:
    """The body bytes for `values` under `signature` (little-endian)."""
    w = _Writer()
    w.write_all(signature, values)
    return bytes(w.buf)


def unmarshal(signature: str, data: bytes, order: str = "<") -> tuple[Any, ...]:
    r = _Reader(data, order)
    return tuple(r.read(t) for t in split_types(signature))


@dataclass
class Message:
    """One D-Bus message; `body` holds the values `signature` describes ('h' values are indexes
    into the file descriptors that travel with it, `unix_fds` of them)."""

    type: MessageType
    serial: int = 0
    path: str | None = None
    interface: str | None = None
    member: str | None = None
    error_name: str | None = None
    reply_serial: int | None = None
    destination: str | None = None
    sender: str | None = None
    signature: str = ""
    body: tuple[Any, ...] = field(default_factory=tuple)
    unix_fds: int = 0
    flags: int = 0

    def fields(self) -> list[tuple[int, Variant]]:
        values: dict[Field, Any] = {
            Field.PATH: self.path,
            Field.INTERFACE: self.interface,
            Field.MEMBER: self.member,
            Field.ERROR_NAME: self.error_name,
            Field.REPLY_SERIAL: self.reply_serial,
            Field.DESTINATION: self.destination,
            Field.SENDER: self.sender,
            Field.SIGNATURE: self.signature or None,
            Field.UNIX_FDS: self.unix_fds or None,
        }
        return [(int(f), Variant(_FIELD_TYPES[f], v)) for f, v in values.items() if v is not None]


def encode(msg: Message) -> bytes:
    body = marshal(msg.signature, msg.body)
    w = _Writer()
    header = (ord("l"), int(msg.type), msg.flags, PROTOCOL_VERSION, len(body), msg.serial)
    w.write_all("yyyyuu", header)
    w.write("a(yv)", msg.fields())
    w.pad(8)
    return bytes(w.buf) + body


def message_length(data: bytes) -> int | None:
    """The whole length of the message `data` starts with, once its first 16 bytes are there."""
    if len(data) < 16:
        return None
    order = _order(data)
    body_len, _, fields_len = struct.unpack(order + "III", data[4:16])
    total = 16 + fields_len
    total += -total % 8
    total += body_len
    if total > MAX_MESSAGE:
        raise DBusWireError(f"message of {total} bytes is over the 128 MiB limit")
    return int(total)


def _order(data: bytes) -> str:
    if data[0:1] == b"l":
        return "<"
    if data[0:1] == b"B":
        return ">"
    raise DBusWireError(f"bad endianness byte {data[0:1]!r}")


def decode(data: bytes) -> Message:
    """One whole message (see message_length)."""
    order = _order(data)
    r = _Reader(data, order)
    _, mtype, flags, version, body_len, serial = (r.read(t) for t in "yyyyuu")
    if version != PROTOCOL_VERSION:
        raise DBusWireError(f"protocol version {version} is not supported")
    known = {int(f) for f in Field}
    found = {Field(code): v.value for code, v in r.read("a(yv)") if code in known}
    r.align(8)
    signature = str(found.get(Field.SIGNATURE, ""))
    body_bytes = r.take(body_len)
    return Message(
        type=MessageType(mtype),
        serial=serial,
        path=found.get(Field.PATH),
        interface=found.get(Field.INTERFACE),
        member=found.get(Field.MEMBER),
        error_name=found.get(Field.ERROR_NAME),
        reply_serial=found.get(Field.REPLY_SERIAL),
        destination=found.get(Field.DESTINATION),
        sender=found.get(Field.SENDER),
        signature=signature,
        body=unmarshal(signature, body_bytes, order),
        unix_fds=int(found.get(Field.UNIX_FDS, 0)),
        flags=flags,
    )
