"""The fake runtime's own behaviour that tests elsewhere rely on: call log, faults, images,
state transitions and restarts. Driven through RuntimeClient like any other CRI user.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from cri import api
from cri.client import RuntimeClient
from cri.errors import AlreadyExists, CRIError, NotFound
from cri.fake import METHODS, FakeRuntime, FakeRuntimeServer, normalize_image_ref
from tests.unit.cri.helpers import IMAGE, container_config, sandbox_config


@pytest.mark.parametrize(
    ("ref", "normalized"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/app", "docker.io/user/app:latest"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("quay.io/x/y@sha256:abc", "quay.io/x/y@sha256:abc"),
    ],
)
def test_normalize_image_ref(ref: str, normalized: str) -> None:
    assert normalize_image_ref(ref) == normalized


def test_methods_cover_the_proto() -> None:
    assert "PullImage" in METHODS and "ListPodSandboxStats" in METHODS
    assert len(METHODS) == 29


def test_unknown_method_fault_is_rejected() -> None:
    with pytest.raises(ValueError, match="PullImages"):
        FakeRuntime().fail("PullImages", grpc.StatusCode.INTERNAL)


async def test_create_needs_image_and_ready_sandbox(client: RuntimeClient) -> None:
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    with pytest.raises(NotFound, match="image"):
        await client.create_container(sandbox_id, container_config(), config)
    await client.pull_image(IMAGE)
    await client.create_container(sandbox_id, container_config(), config)
    with pytest.raises(AlreadyExists):
        await client.create_container(sandbox_id, container_config(), config)
    await client.stop_pod_sandbox(sandbox_id)
    with pytest.raises(CRIError) as caught:
        await client.create_container(sandbox_id, container_config("late"), config)
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_start_twice_is_refused(client: RuntimeClient) -> None:
    await client.pull_image(IMAGE)
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    container_id = await client.create_container(sandbox_id, container_config(), config)
    await client.start_container(container_id)
    with pytest.raises(CRIError, match="CONTAINER_RUNNING"):
        await client.start_container(container_id)


async def test_remove_is_idempotent_and_cascades(client: RuntimeClient, fake: FakeRuntime) -> None:
    await client.pull_image(IMAGE)
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    await client.create_container(sandbox_id, container_config(), config)
    await client.remove_pod_sandbox(sandbox_id)
    await client.remove_pod_sandbox(sandbox_id)
    await client.remove_container("gone")
    assert fake.sandboxes == {} and fake.containers == {}


async def test_host_network_sandbox_has_no_pod_ip(client: RuntimeClient) -> None:
    config = sandbox_config()
    config.linux.security_context.namespace_options.network = api.NODE
    sandbox_id = await client.run_pod_sandbox(config)
    status = (await client.pod_sandbox_status(sandbox_id)).status
    assert status.network.ip == ""
    assert status.linux.namespaces.options.network == api.NODE


async def test_delay_then_fault_order(client: RuntimeClient, fake: FakeRuntime) -> None:
    fake.fail("ImageFsInfo", grpc.StatusCode.INTERNAL, "disk on fire")
    fake.fail("ImageFsInfo", grpc.StatusCode.NOT_FOUND)
    with pytest.raises(CRIError, match="disk on fire"):
        await client.image_fs_info()
    with pytest.raises(NotFound):
        await client.image_fs_info()
    await client.image_fs_info()
    assert fake.methods() == ["ImageFsInfo"] * 3


async def test_restart_keeps_state_and_socket_path() -> None:
    async with FakeRuntimeServer() as server:
        path = Path(server.socket_path)
        assert path.is_socket()  # noqa: ASYNC240 (a stat on tmpfs in a test)
        server.runtime.add_image("pause")
        await server.stop()
        assert not server.running
        assert not path.exists()  # noqa: ASYNC240
        await server.start()
        async with RuntimeClient(str(path)) as client:
            assert [i.repo_tags[0] for i in await client.list_images()] == [
                "docker.io/library/pause:latest"
            ]
    assert not path.parent.exists()
