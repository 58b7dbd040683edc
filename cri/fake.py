"""In-memory fake CRI runtime served by grpc.aio on a unix socket, for tests (like upstream's fake).
State lives in cri.fake_state, handlers in cri.fake_servicers; never use it in production.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from types import TracebackType
from typing import Self

import grpc
import grpc.aio

from cri._gen import api_pb2_grpc
from cri.channel import MAX_MESSAGE_BYTES
from cri.fake_servicers import ImageServicer, RuntimeServicer
from cri.fake_state import (
    METHODS,
    FakeCall,
    FakeContainer,
    FakeRuntime,
    FakeSandbox,
    normalize_image_ref,
)

__all__ = [
    "METHODS",
    "FakeCall",
    "FakeContainer",
    "FakeRuntime",
    "FakeRuntimeServer",
    "FakeSandbox",
    "normalize_image_ref",
]


class FakeRuntimeServer:
    """Serves a FakeRuntime on a unix socket; stop() and start() again to simulate a restart.

    Without `socket_path` it makes a private temp dir, removed by close() (or `async with`).
    """

    def __init__(self, runtime: FakeRuntime | None = None, *, socket_path: str | None = None):
        self.runtime = runtime if runtime is not None else FakeRuntime()
        self._tmpdir: str | None = None
        if socket_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="fakecri-")
            socket_path = os.path.join(self._tmpdir, "cri.sock")
        self.socket_path = socket_path
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ]
        )
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(RuntimeServicer(self.runtime), server)
        api_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(self.runtime), server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        self._server = server

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving (in-flight calls are cancelled after `grace`); state is kept."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def close(self) -> None:
        await self.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
