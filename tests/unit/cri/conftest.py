"""Fixtures for the cri/ unit tests: a fake runtime on a private unix socket and a client for it.
Each test gets its own server and client, both closed (and the socket dir removed) afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cri.client import RuntimeClient
from cri.fake import FakeRuntime, FakeRuntimeServer


@pytest.fixture
async def server() -> AsyncIterator[FakeRuntimeServer]:
    async with FakeRuntimeServer() as srv:
        yield srv


@pytest.fixture
def fake(server: FakeRuntimeServer) -> FakeRuntime:
    return server.runtime


@pytest.fixture
async def client(server: FakeRuntimeServer) -> AsyncIterator[RuntimeClient]:
    async with RuntimeClient(server.endpoint) as cli:
        yield cli
