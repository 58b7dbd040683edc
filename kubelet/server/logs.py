"""`/containerLogs/{ns}/{pod}/{container}`: reads a container's CRI log file and streams it,
following new lines and file replacement until the container exits. Reads files; writes none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from aiohttp import web

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError
from kubelet.server import crilog
from kubelet.server.targets import HTTPError, PodRef, log_target

POLL_SECONDS = 0.1
EXIT_CHECK_SECONDS = 0.5
Write = Callable[[bytes], Awaitable[None]]


class LogFile:
    """An open log file that notices when the path is replaced (rotation) and reopens it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by close())

    def read(self) -> bytes:
        return self.handle.read()

    def replaced(self) -> bool:
        """The path now names another file (renamed away and recreated) or was truncated."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self.handle.fileno())
        return (st.st_ino, st.st_dev) != (
            mine.st_ino,
            mine.st_dev,
        ) or st.st_size < self.handle.tell()

    def reopen(self) -> None:
        self.handle.close()
        self.handle = open(self.path, "rb")  # noqa: SIM115

    def close(self) -> None:
        self.handle.close()


class LogStream:
    """One request's view of a log: joins partial lines, applies the options, writes output."""

    def __init__(self, opts: crilog.LogOptions, write: Write) -> None:
        self.opts = opts
        self.write = write
        self.joiner = crilog.Joiner()
        self.limiter = crilog.Limiter(opts.limit_bytes)
        self.rest = b""

    async def emit(self, entries: list[crilog.Entry]) -> None:
        out = b"".join(crilog.render(e, self.opts) for e in entries)
        out = self.limiter.take(out)
        if out:
            await self.write(out)

    def parse(self, data: bytes) -> list[crilog.Entry]:
        lines, self.rest = crilog.split_complete(self.rest + data)
        return list(crilog.entries(lines, self.joiner))

    async def backlog(self, data: bytes) -> None:
        """What the file holds already, selected by since/tail."""
        await self.emit(crilog.select(self.parse(data), self.opts))

    async def more(self, data: bytes) -> None:
        await self.emit([e for e in self.parse(data) if crilog.wanted(e, self.opts)])

    async def finish(self) -> None:
        """The container ended: a last partial line is shown as it is."""
        tail = self.parse(b"\n") if self.rest else []
        await self.emit([e for e in tail + self.joiner.flush() if crilog.wanted(e, self.opts)])


async def follow(
    log: LogFile, stream: LogStream, exited: Callable[[], Awaitable[bool]], gone: Callable[[], bool]
) -> None:
    """Stream new lines until the container has exited and the file is read, or the client left."""
    next_check = 0.0
    while not stream.limiter.spent and not gone():
        data = log.read()
        if data:
            await stream.more(data)
            continue
        if log.replaced():
            log.reopen()
            continue
        now = time.monotonic()
        if now >= next_check:
            next_check = now + EXIT_CHECK_SECONDS
            if await exited():
                await stream.more(log.read())
                await stream.finish()
                return
        await asyncio.sleep(POLL_SECONDS)


async def _open_log(path: str, attempts: int = 10) -> LogFile:
    """The live log file; briefly retried, as a rotation renames it before the runtime reopens
    it (kubelet.logrotate), a window of milliseconds in which the path does not exist."""
    for _ in range(attempts - 1):
        try:
            return LogFile(path)
        except FileNotFoundError:
            await asyncio.sleep(POLL_SECONDS)
    return LogFile(path)


def _exited(runtime: RuntimeClient, container_id: str) -> Callable[[], Awaitable[bool]]:
    exited_state = api.ContainerState.Value("CONTAINER_EXITED")

    async def check() -> bool:
        try:
            status = await runtime.container_status(container_id, deadline=5)
        except CRIError:
            return True  # removed: nothing more will be written
        return status.status.state == exited_state

    return check


async def container_logs(
    request: web.Request, runtime: RuntimeClient, pod: PodRef, container: str
) -> web.StreamResponse:
    try:
        opts = crilog.parse_options(dict(request.query), time.time_ns())
    except crilog.OptionError as e:
        raise HTTPError(400, str(e)) from None
    target = await log_target(runtime, pod, container, previous=opts.previous)
    status = (await runtime.container_status(target.id, deadline=10)).status
    if not status.log_path:
        raise HTTPError(400, f'container "{container}" in pod "{pod.display}" has no log file')
    try:
        log = await _open_log(status.log_path)
    except OSError as e:
        raise HTTPError(
            404, f'container "{container}" in pod "{pod.display}": log file: {e.strerror}'
        ) from None
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    stream = LogStream(opts, resp.write)
    try:
        await stream.backlog(await asyncio.to_thread(log.read))
        if opts.follow and not stream.limiter.spent:
            transport = request.transport
            await follow(
                log,
                stream,
                _exited(runtime, target.id),
                lambda: transport is None or transport.is_closing(),
            )
        elif not stream.limiter.spent:
            await stream.finish()
    except ConnectionError:
        pass  # the client went away
    finally:
        log.close()
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
