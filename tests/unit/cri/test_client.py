"""RuntimeClient against the fake runtime: each RPC, the lifecycle, filters and error mapping.
Uses only the in-process fake on a temp unix socket; no real runtime, no root.
"""

from __future__ import annotations

import grpc
import pytest

from cri import api
from cri.client import RuntimeClient, Timeouts
from cri.errors import (
    AlreadyExists,
    CRIError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from cri.fake import FakeRuntime, FakeRuntimeServer
from tests.unit.cri.helpers import IMAGE, container_config, sandbox_config


async def test_version(client: RuntimeClient) -> None:
    version = await client.version()
    assert version.runtime_api_version == "v1"
    assert version.runtime_name == "fake-runtime"


async def test_status_and_runtime_config(client: RuntimeClient, fake: FakeRuntime) -> None:
    fake.network_ready = False
    status = await client.status()
    conditions = {c.type: c for c in status.status.conditions}
    assert conditions["RuntimeReady"].status
    assert not conditions["NetworkReady"].status
    assert conditions["NetworkReady"].reason == "NetworkPluginNotReady"
    await client.update_runtime_config(pod_cidr="10.244.1.0/24")
    assert fake.pod_cidr == "10.244.1.0/24"


async def test_full_lifecycle(client: RuntimeClient, fake: FakeRuntime) -> None:
    image_ref = await client.pull_image(IMAGE)
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    sandbox = (await client.pod_sandbox_status(sandbox_id)).status
    assert sandbox.state == api.SANDBOX_READY
    assert sandbox.metadata.name == "web"
    assert sandbox.network.ip

    container_id = await client.create_container(sandbox_id, container_config(), config)
    status = (await client.container_status(container_id)).status
    assert status.state == api.CONTAINER_CREATED
    assert status.image_ref == image_ref
    assert status.log_path == "/var/log/pods/default_web_uid-1/app/0.log"

    await client.start_container(container_id)
    status = (await client.container_status(container_id)).status
    assert status.state == api.CONTAINER_RUNNING
    assert status.started_at >= status.created_at

    await client.stop_container(container_id, grace_seconds=30)
    status = (await client.container_status(container_id)).status
    assert status.state == api.CONTAINER_EXITED
    assert (status.exit_code, status.reason) == (0, "Completed")

    await client.stop_pod_sandbox(sandbox_id)
    sandbox = (await client.pod_sandbox_status(sandbox_id)).status
    assert sandbox.state == api.SANDBOX_NOTREADY

    await client.remove_container(container_id)
    await client.remove_pod_sandbox(sandbox_id)
    assert await client.list_containers() == []
    assert await client.list_pod_sandbox() == []
    assert fake.methods() == [
        "PullImage",
        "RunPodSandbox",
        "PodSandboxStatus",
        "CreateContainer",
        "ContainerStatus",
        "StartContainer",
        "ContainerStatus",
        "StopContainer",
        "ContainerStatus",
        "StopPodSandbox",
        "PodSandboxStatus",
        "RemoveContainer",
        "RemovePodSandbox",
        "ListContainers",
        "ListPodSandbox",
    ]
    (run_request,) = fake.requests("RunPodSandbox")
    assert isinstance(run_request, api.RunPodSandboxRequest)
    assert run_request.config == config


async def test_container_exit_and_sandbox_stop(client: RuntimeClient, fake: FakeRuntime) -> None:
    await client.pull_image(IMAGE)
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    crashed = await client.create_container(sandbox_id, container_config("crash"), config)
    running = await client.create_container(sandbox_id, container_config("app"), config)
    await client.start_container(crashed)
    await client.start_container(running)
    fake.exit_container(crashed, exit_code=2, message="boom")
    status = (await client.container_status(crashed)).status
    assert (status.state, status.exit_code, status.reason, status.message) == (
        api.CONTAINER_EXITED,
        2,
        "Error",
        "boom",
    )
    await client.stop_pod_sandbox(sandbox_id)
    status = (await client.container_status(running)).status
    assert (status.state, status.exit_code) == (api.CONTAINER_EXITED, 137)
    response = await client.pod_sandbox_status(sandbox_id)
    assert {s.id for s in response.containers_statuses} == {crashed, running}


async def test_list_filters(client: RuntimeClient) -> None:
    await client.pull_image(IMAGE)
    web_config = sandbox_config("web", uid="u-web")
    db_config = sandbox_config("db", uid="u-db")
    web = await client.run_pod_sandbox(web_config)
    db = await client.run_pod_sandbox(db_config)
    await client.stop_pod_sandbox(db)
    app = await client.create_container(
        web, container_config("app", labels={"tier": "fe"}), web_config
    )
    side = await client.create_container(web, container_config("side"), web_config)
    await client.start_container(app)

    ready = api.PodSandboxFilter(state=api.PodSandboxStateValue(state=api.SANDBOX_READY))
    assert [s.id for s in await client.list_pod_sandbox(filter=ready)] == [web]
    # SANDBOX_READY is the zero value: an explicit state filter must still be honoured.
    notready = api.PodSandboxFilter(state=api.PodSandboxStateValue(state=api.SANDBOX_NOTREADY))
    assert [s.id for s in await client.list_pod_sandbox(filter=notready)] == [db]
    by_label = api.PodSandboxFilter(label_selector={"io.kubernetes.pod.name": "db"})
    assert [s.id for s in await client.list_pod_sandbox(filter=by_label)] == [db]
    assert [s.id for s in await client.list_pod_sandbox(filter=api.PodSandboxFilter(id=web))] == [
        web
    ]
    assert len(await client.list_pod_sandbox()) == 2

    created = api.ContainerFilter(state=api.ContainerStateValue(state=api.CONTAINER_CREATED))
    assert [c.id for c in await client.list_containers(filter=created)] == [side]
    by_sandbox = api.ContainerFilter(pod_sandbox_id=db)
    assert await client.list_containers(filter=by_sandbox) == []
    by_label_c = api.ContainerFilter(label_selector={"tier": "fe"})
    (listed,) = await client.list_containers(filter=by_label_c)
    assert (listed.id, listed.pod_sandbox_id, listed.state) == (app, web, api.CONTAINER_RUNNING)
    assert listed.metadata.name == "app"


async def test_images(client: RuntimeClient) -> None:
    assert not (await client.image_status(IMAGE)).HasField("image")
    ref = await client.pull_image(api.ImageSpec(image=IMAGE), auth=api.AuthConfig(username="u"))
    image = (await client.image_status(IMAGE)).image
    assert image.id == ref
    assert image.repo_tags == ["docker.io/library/busybox:1.36"]
    assert [i.id for i in await client.list_images()] == [ref]
    by_ref = api.ImageFilter(image=api.ImageSpec(image="docker.io/library/busybox:1.36"))
    assert [i.id for i in await client.list_images(filter=by_ref)] == [ref]
    fs = await client.image_fs_info()
    assert fs.image_filesystems[0].used_bytes.value == image.size
    await client.remove_image(ref)
    await client.remove_image(ref)  # removing an absent image is not an error
    assert await client.list_images() == []


async def test_exec_attach_port_forward_and_logs(client: RuntimeClient, fake: FakeRuntime) -> None:
    await client.pull_image(IMAGE)
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    container_id = await client.create_container(sandbox_id, container_config(), config)
    await client.start_container(container_id)

    result = await client.exec_sync(container_id, ["echo", "hi"], timeout_seconds=5)
    assert (result.stdout, result.exit_code) == (b"echo hi\n", 0)
    fake.exec_handler = lambda cid, cmd: api.ExecSyncResponse(stderr=b"no", exit_code=3)
    result = await client.exec_sync(container_id, ["false"])
    assert (result.stderr, result.exit_code) == (b"no", 3)

    assert "/exec/" in await client.exec(container_id, ["sh"], tty=True, stdin=True)
    assert "/attach/" in await client.attach(container_id, stdin=True)
    assert "/portforward/" in await client.port_forward(sandbox_id, [80, 443])
    await client.reopen_container_log(container_id)
    (pf,) = fake.requests("PortForward")
    assert isinstance(pf, api.PortForwardRequest)
    assert list(pf.port) == [80, 443]


async def test_update_resources_and_stats(client: RuntimeClient) -> None:
    await client.pull_image(IMAGE)
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    container_id = await client.create_container(sandbox_id, container_config(), config)
    await client.start_container(container_id)

    resources = api.LinuxContainerResources(cpu_quota=50000, cpu_period=100000)
    await client.update_container_resources(container_id, linux=resources)
    status = (await client.container_status(container_id)).status
    assert status.resources.linux.cpu_quota == 50000

    stats = await client.container_stats(container_id)
    assert stats.attributes.id == container_id
    assert stats.memory.working_set_bytes.value > 0
    assert [s.attributes.id for s in await client.list_container_stats()] == [container_id]
    by_sandbox = api.ContainerStatsFilter(pod_sandbox_id="other")
    assert await client.list_container_stats(filter=by_sandbox) == []
    pod_stats = await client.pod_sandbox_stats(sandbox_id)
    assert [c.attributes.id for c in pod_stats.linux.containers] == [container_id]
    listed = await client.list_pod_sandbox_stats(filter=api.PodSandboxStatsFilter(id=sandbox_id))
    assert [s.attributes.id for s in listed] == [sandbox_id]


async def test_not_found_names_method_and_object(client: RuntimeClient) -> None:
    with pytest.raises(NotFound) as caught:
        await client.start_container("c0ffee")
    err = caught.value
    assert (err.code, err.method, err.object_id) == (
        grpc.StatusCode.NOT_FOUND,
        "StartContainer",
        "c0ffee",
    )
    assert "StartContainer" in str(err) and "c0ffee" in str(err)
    with pytest.raises(NotFound, match="PodSandboxStatus"):
        await client.pod_sandbox_status("nope")


async def test_already_exists_and_invalid_argument(client: RuntimeClient) -> None:
    config = sandbox_config()
    await client.run_pod_sandbox(config)
    with pytest.raises(AlreadyExists, match="default/web"):
        await client.run_pod_sandbox(config)
    with pytest.raises(InvalidArgument):
        await client.run_pod_sandbox(api.PodSandboxConfig())


async def test_precondition_maps_to_base_error(client: RuntimeClient) -> None:
    await client.pull_image(IMAGE)
    config = sandbox_config()
    sandbox_id = await client.run_pod_sandbox(config)
    container_id = await client.create_container(sandbox_id, container_config(), config)
    with pytest.raises(CRIError) as caught:
        await client.exec_sync(container_id, ["true"])
    assert type(caught.value) is CRIError
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_injected_errors(client: RuntimeClient, fake: FakeRuntime) -> None:
    fake.fail("PullImage", grpc.StatusCode.NOT_FOUND, "manifest unknown")
    with pytest.raises(NotFound, match="manifest unknown") as caught:
        await client.pull_image("registry.example/app:v1")
    assert caught.value.object_id == "registry.example/app:v1"
    assert await client.pull_image("registry.example/app:v1")  # only the next call failed

    fake.fail("Version", grpc.StatusCode.UNIMPLEMENTED, times=2)
    for _ in range(2):
        with pytest.raises(Unimplemented):
            await client.version()
    await client.version()

    fake.fail("Status", grpc.StatusCode.UNAVAILABLE, times=None)
    with pytest.raises(Unavailable) as unavailable:
        await client.status()
    assert unavailable.value.temporary
    fake.clear_faults()
    await client.status()


async def test_deadline_exceeded(fake: FakeRuntime, client: RuntimeClient) -> None:
    fake.delay("ListContainers", 0.5)
    with pytest.raises(DeadlineExceeded) as caught:
        await client.list_containers(deadline=0.05)
    assert caught.value.method == "ListContainers"
    assert caught.value.temporary


async def test_default_deadlines_per_method(server: FakeRuntimeServer) -> None:
    timeouts = Timeouts(default=0.05, pull_image=2.0, exec_sync=0.05, exec_sync_margin=0.05)
    fake = server.runtime
    async with RuntimeClient(server.endpoint, timeouts=timeouts) as client:
        fake.delay("Version", 0.3)
        with pytest.raises(DeadlineExceeded):
            await client.version()
        fake.delay("PullImage", 0.2)  # within the longer PullImage deadline
        await client.pull_image(IMAGE)

        config = sandbox_config()
        sandbox_id = await client.run_pod_sandbox(config)
        container_id = await client.create_container(sandbox_id, container_config(), config)
        await client.start_container(container_id)
        fake.delay("ExecSync", 0.2)  # within timeout_seconds + margin
        await client.exec_sync(container_id, ["true"], timeout_seconds=1)
        fake.delay("ExecSync", 0.2)  # no command timeout: the exec_sync default applies
        with pytest.raises(DeadlineExceeded):
            await client.exec_sync(container_id, ["true"])
