"""A small asyncio D-Bus client on the stdlib: the system bus address ($DBUS_SYSTEM_BUS_ADDRESS
as libraries honour it), EXTERNAL authentication with unix-fd passing, method calls with their
replies (fds received with SCM_RIGHTS), and the signals the caller matched. No logind logic.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from kubelet.shutdown import dbus_wire as wire

log = logging.getLogger(__name__)

SYSTEM_BUS_DEFAULT = "unix:path=/run/dbus/system_bus_socket"
BUS_NAME = BUS_INTERFACE = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
MAX_FDS = 16
"""File descriptors taken from one read (logind sends one per Inhibit reply)."""


class DBusError(Exception):
    """A failed call: the bus's or the peer's error name and message, or a lost connection."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name


def system_bus_address(env: Mapping[str, str] | None = None) -> str:
    return (os.environ if env is None else env).get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS_DEFAULT


def socket_address(address: str) -> str:
    """The AF_UNIX address of the first unix: entry of a D-Bus address list ("unix:path=..." or
    "unix:abstract=..."; values %-escaped as the spec says)."""
    for entry in address.split(";"):
        transport, _, params = entry.partition(":")
        if transport != "unix":
            continue
        keys = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        if "path" in keys:
            return unquote(keys["path"])
        if "abstract" in keys:
            return "\0" + unquote(keys["abstract"])
    raise DBusError("org.freedesktop.DBus.Error.BadAddress", f"no unix path in {address!r}")


@dataclass
class Reply:
    """A method return: its values and the file descriptors that came with it (now ours)."""

    body: tuple[Any, ...]
    fds: list[int]

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


class Connection:
    """One authenticated bus connection, driven by the event loop's reader callback."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._fds: list[int] = []
        self._serial = 0
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self.signals: asyncio.Queue[wire.Message | None] = asyncio.Queue()
        """Signals as they come; None once the connection is lost."""
        self.closed = asyncio.Event()
        self.unique_name = ""

    @classmethod
    async def open(cls, address: str, *, deadline: float = 5.0) -> Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(deadline):
                await loop.sock_connect(sock, socket_address(address))
                await _authenticate(loop, sock)
        except (OSError, TimeoutError) as e:
            sock.close()
            raise DBusError("org.freedesktop.DBus.Error.NoServer", f"{address}: {e}") from e
        conn = cls(sock)
        loop.add_reader(sock.fileno(), conn._on_readable)
        try:
            reply = await conn.call(BUS_NAME, BUS_PATH, BUS_INTERFACE, "Hello", deadline=deadline)
        except DBusError:
            conn.close()
            raise
        conn.unique_name = str(reply.body[0])
        return conn

    async def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        args: Sequence[Any] = (),
        *,
        deadline: float = 25.0,
    ) -> Reply:
        """Call a method and wait for its return; an error reply raises DBusError."""
        if self.closed.is_set():
            raise DBusError("org.freedesktop.DBus.Error.Disconnected", "connection closed")
        self._serial += 1
        msg = wire.Message(
            wire.MessageType.METHOD_CALL,
            serial=self._serial,
            path=path,
            interface=interface,
            member=member,
            destination=destination,
            signature=signature,
            body=tuple(args),
        )
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[msg.serial] = future
        try:
            await asyncio.get_running_loop().sock_sendall(self._sock, wire.encode(msg))
            async with asyncio.timeout(deadline):
                return await future
        except TimeoutError:
            raise DBusError(
                "org.freedesktop.DBus.Error.NoReply",
                f"{interface}.{member}: no reply in {deadline}s",
            ) from None
        except OSError as e:
            self._lost(e)
            raise DBusError("org.freedesktop.DBus.Error.Disconnected", str(e)) from e
        finally:
            self._pending.pop(msg.serial, None)

    async def add_match(self, rule: str) -> None:
        await self.call(BUS_NAME, BUS_PATH, BUS_INTERFACE, "AddMatch", "s", (rule,))

    def close(self) -> None:
        self._lost(None)

    # ---- reading --------------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data, ancdata, _, _ = self._sock.recvmsg(
                65536,
                socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize),
                socket.MSG_CMSG_CLOEXEC,  # an inhibitor fd must not leak into child processes
            )
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._lost(e)
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self._fds.extend(fds)
        if not data:
            self._lost(None)
            return
        self._buf += data
        try:
            self._dispatch_complete()
        except wire.DBusWireError as e:
            log.error("D-Bus: malformed message from the bus: %s", e)
            self._lost(e)

    def _dispatch_complete(self) -> None:
        while True:
            size = wire.message_length(bytes(self._buf[:16]))
            if size is None or len(self._buf) < size:
                return
            msg = wire.decode(bytes(self._buf[:size]))
            del self._buf[:size]
            fds, self._fds = self._fds[: msg.unix_fds], self._fds[msg.unix_fds :]
            self._dispatch(msg, fds)

    def _dispatch(self, msg: wire.Message, fds: list[int]) -> None:
        if msg.type == wire.MessageType.SIGNAL:
            self.signals.put_nowait(msg)
            Reply((), fds).close_fds()
            return
        future = self._pending.get(msg.reply_serial or -1)
        if future is None or future.done() or msg.type == wire.MessageType.METHOD_CALL:
            Reply((), fds).close_fds()  # a reply nobody waits for, or a call we do not serve
            return
        if msg.type == wire.MessageType.ERROR:
            text = str(msg.body[0]) if msg.body else ""
            future.set_exception(DBusError(msg.error_name or "unknown error", text))
            Reply((), fds).close_fds()
        else:
            future.set_result(Reply(msg.body, fds))

    def _lost(self, error: BaseException | None) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if error is not None:
            log.warning("D-Bus connection lost: %s", error)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    DBusError("org.freedesktop.DBus.Error.Disconnected", "connection lost")
                )
        Reply((), self._fds).close_fds()
        self.signals.put_nowait(None)


async def _authenticate(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """SASL EXTERNAL as our uid, then unix-fd passing (needed for logind's Inhibit)."""
    uid = str(os.geteuid()).encode().hex()
    await loop.sock_sendall(sock, b"\0AUTH EXTERNAL " + uid.encode() + b"\r\n")
    line = await _line(loop, sock)
    if not line.startswith(b"OK "):
        raise OSError(f"D-Bus authentication refused: {line.decode(errors='replace')}")
    await loop.sock_sendall(sock, b"NEGOTIATE_UNIX_FD\r\n")
    line = await _line(loop, sock)
    if line != b"AGREE_UNIX_FD":
        raise OSError(f"the bus does not pass file descriptors: {line.decode(errors='replace')}")
    await loop.sock_sendall(sock, b"BEGIN\r\n")


async def _line(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """One auth line; the server sends nothing after it until BEGIN, so byte reads are safe."""
    out = bytearray()
    while not out.endswith(b"\r\n"):
        chunk = await loop.sock_recv(sock, 1)
        if not chunk:
            raise OSError("the bus closed the connection during authentication")
        out += chunk
        if len(out) > 4096:
            raise OSError("authentication line too long")
    return bytes(out[:-2])
