"""The client across runtime restarts: calls fail fast while the runtime is down and work again
right after it is back on the same socket; wait_ready() polls Version until then.
"""

from __future__ import annotations

import asyncio

import pytest

from cri import api
from cri.client import RuntimeClient
from cri.errors import Unavailable
from cri.fake import FakeRuntimeServer
from tests.unit.cri.helpers import sandbox_config


async def test_call_after_restart_works(server: FakeRuntimeServer, client: RuntimeClient) -> None:
    sandbox_id = await client.run_pod_sandbox(sandbox_config())
    await server.stop()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Unavailable) as caught:
        await client.version()
    assert caught.value.method == "Version"
    with pytest.raises(Unavailable):
        await client.pod_sandbox_status(sandbox_id)
    assert loop.time() - started < 0.5  # fails fast, does not wait for the deadline

    await server.start()
    # The very first call after the restart succeeds (no waiting out a reconnect back-off),
    # and the fake's state survived the restart like a runtime's on-disk state would.
    status = await client.pod_sandbox_status(sandbox_id)
    assert status.status.state == api.SANDBOX_READY


async def test_wait_ready_polls_until_runtime_is_back(
    server: FakeRuntimeServer, client: RuntimeClient
) -> None:
    await server.stop()

    async def restart_later() -> None:
        await asyncio.sleep(0.2)
        await server.start()

    restart = asyncio.create_task(restart_later())
    version = await client.wait_ready(2.0, interval=0.02)
    await restart
    assert version.runtime_api_version == "v1"
    assert server.runtime.methods().count("Version") == 1  # failed polls never reached it


async def test_wait_ready_gives_up(server: FakeRuntimeServer, client: RuntimeClient) -> None:
    await server.stop()
    with pytest.raises(Unavailable, match=r"not ready within 0\.2s"):
        await client.wait_ready(0.2, interval=0.02)


async def test_client_created_before_runtime_starts() -> None:
    server = FakeRuntimeServer()
    try:
        async with RuntimeClient(server.socket_path) as client:
            with pytest.raises(Unavailable):
                await client.version()
            await server.start()
            assert (await client.wait_ready(1.0)).runtime_name == "fake-runtime"
    finally:
        await server.close()


async def test_separate_image_endpoint() -> None:
    async with FakeRuntimeServer() as runtime, FakeRuntimeServer() as images:
        async with RuntimeClient(runtime.endpoint, image_endpoint=images.endpoint) as client:
            await client.pull_image("busybox")
            await client.version()
        assert runtime.runtime.methods() == ["Version"]
        assert images.runtime.methods() == ["PullImage"]
