"""The agent's unix socket for the CNI plugin: one JSON request per connection, one reply.
Never does netlink work on the event loop: requests run one at a time on a worker thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from net.cni import protocol
from net.cni.protocol import CniError, Json, Request

log = logging.getLogger(__name__)
Handler = Callable[[Request], "Json | None"]


class PluginServer:
    """Serves `handler` on `path`; the handler runs on `executor` (a single worker thread by
    default, which also serialises requests)."""

    def __init__(
        self, path: Path, handler: Handler, executor: concurrent.futures.Executor | None = None
    ) -> None:
        self.path = path
        self.handler = handler
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pykubelet-net"
        )
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=protocol.MAX_MESSAGE
        )
        os.chmod(self.path, 0o600)
        log.info("CNI plugin socket listening on %s", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def run_in_worker(self, fn: Callable[[], object]) -> object:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def answer(self, raw: bytes) -> Json:
        """The reply for one raw request (also what tests call without a socket)."""
        version = protocol.SUPPORTED_VERSIONS[0]
        try:
            req = Request.from_json(protocol.decode_message(raw))
            version = req.cni_version
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.executor, self.handler, req)
            return protocol.reply_ok(result)
        except CniError as e:
            return protocol.reply_error(e, version)
        except Exception as e:  # a bug must still answer the runtime with CNI error JSON
            log.exception("CNI request failed")
            err = CniError(protocol.E_INTERNAL, "internal error", f"{type(e).__name__}: {e}")
            return protocol.reply_error(err, version)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await reader.read(protocol.MAX_MESSAGE + 1)
            writer.write(protocol.encode_message(await self.answer(raw)))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("CNI plugin connection dropped: %s", e)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
