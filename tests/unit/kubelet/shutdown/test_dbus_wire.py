"""The D-Bus wire format: our encoder against jeepney's parser and jeepney's encoder against our
decoder (two independent implementations), plus alignment and error cases by hand.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from jeepney import DBusAddress, new_method_call, new_signal
from jeepney.low_level import Message as JMessage

from kubelet.shutdown import dbus_wire as wire


def _call(signature: str, body: tuple[Any, ...]) -> wire.Message:
    return wire.Message(
        wire.MessageType.METHOD_CALL,
        serial=7,
        path="/org/freedesktop/login1",
        interface="org.freedesktop.login1.Manager",
        member="Inhibit",
        destination="org.freedesktop.login1",
        signature=signature,
        body=body,
    )


@pytest.mark.parametrize(
    ("signature", "body"),
    [
        ("", ()),
        ("ssss", ("shutdown", "kubelet", "Kubelet needs time to handle node shutdown", "delay")),
        ("ss", ("org.freedesktop.login1.Manager", "InhibitDelayMaxUSec")),
        ("ssi", ("systemd-logind.service", "all", 1)),
        ("ybnqiuxtd", (1, True, -2, 3, -4, 5, -6, 2**63, 0.5)),
        ("a{sv}as", ({"a": ("t", 30_000_000), "b": ("s", "x")}, ["p", "q"])),
        ("a(yv)", ([(1, ("o", "/a")), (3, ("s", "Hello"))],)),
        ("at", ([],)),
        ("g", ("a{sv}",)),
    ],
)
def test_our_messages_parse_with_jeepney(signature: str, body: tuple[Any, ...]) -> None:
    ours = _body_to_wire(signature, body)
    data = wire.encode(_call(signature, ours))
    parsed = JMessage.from_buffer(data)
    assert parsed.header.serial == 7
    assert tuple(parsed.body) == body
    assert wire.message_length(data) == len(data)


@pytest.mark.parametrize(
    ("signature", "body"),
    [
        ("ssss", ("shutdown", "kubelet", "why", "delay")),
        ("v", (("t", 5_000_000),)),
        ("a{sv}", ({"InhibitDelayMaxUSec": ("t", 1), "Docked": ("b", False)},)),
        ("(ib)ay", ((3, True), b"\x01\x02")),
    ],
)
def test_jeepney_messages_decode_with_ours(signature: str, body: tuple[Any, ...]) -> None:
    addr = DBusAddress("/org/freedesktop/login1", "org.freedesktop.login1", "org.x.Y")
    data = new_method_call(addr, "M", signature, body).serialise(serial=42)
    msg = wire.decode(data)
    assert msg.serial == 42 and msg.member == "M" and msg.signature == signature
    assert _body_from_wire(signature, msg.body) == body


def test_signal_with_a_boolean() -> None:
    sig = new_signal(
        DBusAddress("/org/freedesktop/login1", interface="org.freedesktop.login1.Manager"),
        "PrepareForShutdown",
        "b",
        (True,),
    ).serialise(serial=3)
    msg = wire.decode(sig)
    assert msg.type == wire.MessageType.SIGNAL
    assert (msg.path, msg.interface, msg.member, msg.body) == (
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
        "PrepareForShutdown",
        (True,),
    )


def test_unix_fd_count_and_index() -> None:
    msg = wire.Message(wire.MessageType.METHOD_RETURN, serial=2, reply_serial=1, signature="h")
    msg.body, msg.unix_fds = (0,), 1
    back = wire.decode(wire.encode(msg))
    assert back.unix_fds == 1 and back.body == (0,) and back.reply_serial == 1


def test_alignment_of_a_uint64_after_a_byte() -> None:
    assert wire.marshal("yt", (1, 2)) == b"\x01" + b"\0" * 7 + struct.pack("<Q", 2)
    # an empty array of 8-aligned elements still pads to the element boundary
    assert wire.marshal("yat", (1, [])) == b"\x01\0\0\0" + b"\0\0\0\0"
    assert wire.unmarshal("yat", wire.marshal("yat", (1, [5, 6]))) == (1, [5, 6])


def test_big_endian_messages_decode() -> None:
    addr = DBusAddress("/a", "b.c", "d.e")
    from jeepney import Endianness

    msg = new_method_call(addr, "M", "us", (7, "x"))
    msg.header.endianness = Endianness.big
    back = wire.decode(msg.serialise(serial=1))
    assert back.body == (7, "x")


@pytest.mark.parametrize(
    ("signature", "words"),
    [("a", "without an element type"), ("(ss", "unclosed"), ("z", "unknown type code")],
)
def test_bad_signatures_are_refused(signature: str, words: str) -> None:
    with pytest.raises(wire.DBusWireError, match=words):
        wire.split_types(signature)


def test_truncated_and_foreign_data_are_refused() -> None:
    data = wire.encode(_call("s", ("x",)))
    with pytest.raises(wire.DBusWireError, match="ends inside"):
        wire.decode(data[:-3])
    with pytest.raises(wire.DBusWireError, match="endianness"):
        wire.message_length(b"X" + data[1:16])
    assert wire.message_length(data[:10]) is None


def test_split_types() -> None:
    assert wire.split_types("a{sv}i(ba(yv))h") == ["a{sv}", "i", "(ba(yv))", "h"]


def _body_to_wire(signature: str, body: tuple[Any, ...]) -> tuple[Any, ...]:
    """jeepney writes variants as (signature, value) tuples; ours are Variant objects."""
    return tuple(_to_variant(t, v) for t, v in zip(wire.split_types(signature), body, strict=True))


def _to_variant(sig: str, value: Any) -> Any:
    if sig == "v":
        return wire.Variant(value[0], _to_variant(value[0], value[1]))
    if sig.startswith("a{"):
        _, val = wire.split_types(sig[2:-1])
        return {k: _to_variant(val, v) for k, v in value.items()}
    if sig.startswith("a"):
        return [_to_variant(sig[1:], v) for v in value]
    if sig.startswith("("):
        return tuple(
            _to_variant(t, v) for t, v in zip(wire.split_types(sig[1:-1]), value, strict=True)
        )
    return value


def _body_from_wire(signature: str, body: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        _from_variant(t, v) for t, v in zip(wire.split_types(signature), body, strict=True)
    )


def _from_variant(sig: str, value: Any) -> Any:
    if isinstance(value, wire.Variant):
        return (value.signature, _from_variant(value.signature, value.value))
    if sig == "ay":
        return bytes(value)
    if sig.startswith("a{"):
        _, val = wire.split_types(sig[2:-1])
        return {k: _from_variant(val, v) for k, v in value.items()}
    if sig.startswith("a"):
        return [_from_variant(sig[1:], v) for v in value]
    if sig.startswith("("):
        return tuple(
            _from_variant(t, v) for t, v in zip(wire.split_types(sig[1:-1]), value, strict=True)
        )
    return value
