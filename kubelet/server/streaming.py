"""`/exec`, `/attach`, `/portForward`: asks CRI for a streaming URL and proxies the client's
upgraded connection to the runtime's streaming server byte for byte (SPDY or WebSocket). No framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiMapping

from cri.client import RuntimeClient
from kubelet.server.targets import HTTPError, PodRef, running, sandbox

MAX_RESPONSE_HEAD = 64 * 1024
HIGH_WATER = 4 * 1024 * 1024
DROP_HEADERS = frozenset({b"host", b"authorization", b"content-length", b"transfer-encoding"})


@dataclass(frozen=True)
class StreamOptions:
    """exec/attach query parameters, as the apiserver sends them (`input=1`, `tty=1`...)."""

    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _flag(query: MultiMapping[str], name: str) -> bool:
    value = query.get(name, "")
    if value in ("", "0", "false", "False"):
        return False
    if value in ("1", "true", "True"):
        return True
    raise HTTPError(400, f"{name}: invalid boolean value {value!r}")


def stream_options(query: MultiMapping[str], *, need_command: bool) -> StreamOptions:
    """Validated exec/attach options (upstream: at least one stream; tty merges stderr)."""
    command = tuple(query.getall("command", ()))
    if need_command and not command:
        raise HTTPError(400, "you must specify a command (query parameter command)")
    # the apiserver sends input/output/error (upstream api.ExecStdinParam...); direct clients
    # may use the user-facing stdin/stdout/stderr names
    stdin, stdout, stderr = (
        _flag(query, wire) or _flag(query, user)
        for wire, user in (("input", "stdin"), ("output", "stdout"), ("error", "stderr"))
    )
    tty = _flag(query, "tty")
    if not (stdin or stdout or stderr):
        raise HTTPError(400, "you must specify at least 1 of stdin, stdout, stderr")
    return StreamOptions(command, stdin, stdout, stderr and not tty, tty)


def forward_ports(query: MultiMapping[str]) -> list[int]:
    ports: list[int] = []
    for raw in query.getall("port", ()):
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise HTTPError(400, f"port: invalid port {raw!r}")
        ports.append(int(raw))
    return ports


def request_head(
    method: str, target: str, host: str, headers: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """The client's request replayed to the runtime: its headers (Upgrade, Connection,
    Sec-WebSocket-*, X-Stream-Protocol-Version...) with the runtime's path and host."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: " + host.encode()]
    for name, value in headers:
        if name.lower() in DROP_HEADERS or name.lower().startswith(b"x-forwarded-"):
            continue
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _ToRuntime:
    """Stands in as aiohttp's payload parser: every byte the client sends goes to the runtime."""

    def __init__(self, writer: asyncio.StreamWriter, client: asyncio.BaseTransport | None) -> None:
        self.writer = writer
        self.client = client
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.writer.is_closing():
            return False, b""
        self.writer.write(data)
        if not self.paused and self.writer.transport.get_write_buffer_size() > HIGH_WATER:
            self._pause()
        return False, b""

    def _pause(self) -> None:
        if not isinstance(self.client, asyncio.ReadTransport):
            return
        self.paused = True
        self.client.pause_reading()
        client = self.client

        async def resume() -> None:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()
            self.paused = False
            if not client.is_closing():
                client.resume_reading()

        asyncio.get_running_loop().create_task(resume())

    def feed_eof(self) -> None:
        self.writer.close()


class _RawHead(web.StreamResponse):
    """A response whose status line and headers are the runtime's own bytes, sent unchanged."""

    def __init__(self, head: bytes) -> None:
        super().__init__(status=101)
        self.head = head

    async def _write_headers(self) -> None:
        transport = self._req.transport if self._req is not None else None
        if transport is not None:
            transport.write(self.head)


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPError(500, f"runtime returned an unusable streaming URL {url!r}")
    tls: ssl.SSLContext | None = None
    if parts.scheme == "https":
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE  # the runtime's own throwaway cert, as upstream
    port = parts.port or (443 if tls else 80)
    try:
        reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=tls, limit=MAX_RESPONSE_HEAD
        )
    except OSError as e:
        raise HTTPError(502, f"cannot reach the runtime's streaming server: {e}") from None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return reader, writer, target, parts.netloc


async def proxy(request: web.Request, url: str) -> web.StreamResponse:
    """Replay the client's request to `url`, then pipe both directions until one side ends."""
    reader, writer, target, host = await _open(url)
    writer.write(request_head(request.method, target, host, request.raw_headers))
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as e:
        writer.close()
        raise HTTPError(502, f"the runtime's streaming server did not answer: {e}") from None
    # aiohttp feeds every later byte of the connection to the parser set here
    request.protocol.set_parser(_ToRuntime(writer, request.transport))  # type: ignore[arg-type]
    resp = _RawHead(head)
    resp.force_close()
    await resp.prepare(request)
    transport = request.transport
    try:
        while transport is not None and not transport.is_closing():
            chunk = await reader.read(65536)
            if not chunk:
                break
            transport.write(chunk)
            if transport.get_write_buffer_size() > HIGH_WATER:
                await resp.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        if transport is not None:
            transport.close()
    return resp


async def exec_(
    request: web.Request, runtime: RuntimeClient, pod: PodRef, container: str
) -> web.StreamResponse:
    opts = stream_options(request.query, need_command=True)
    target = await running(runtime, pod, container)
    url = await runtime.exec(
        target.id,
        opts.command,
        tty=opts.tty,
        stdin=opts.stdin,
        stdout=opts.stdout,
        stderr=opts.stderr,
        deadline=10,
    )
    return await proxy(request, url)


async def attach(
    request: web.Request, runtime: RuntimeClient, pod: PodRef, container: str
) -> web.StreamResponse:
    opts = stream_options(request.query, need_command=False)
    target = await running(runtime, pod, container)
    url = await runtime.attach(
        target.id, tty=opts.tty, stdin=opts.stdin, stdout=opts.stdout, stderr=opts.stderr
    )
    return await proxy(request, url)


async def port_forward(
    request: web.Request, runtime: RuntimeClient, pod: PodRef
) -> web.StreamResponse:
    ports = forward_ports(request.query)
    box = await sandbox(runtime, pod)
    url = await runtime.port_forward(box.id, ports, deadline=10)
    return await proxy(request, url)
