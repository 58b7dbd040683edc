"""CRI on the harness's containerd, through pykubelet's own client: Version, and a pause sandbox
with a busybox container that prints to its log and is removed afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import images, process
from cluster import up as cluster
from cluster.spec import ClusterSpec
from cri import api
from cri.client import RuntimeClient

from .conftest import NODE


@pytest.fixture(scope="module")
def network(cluster_spec: ClusterSpec) -> Iterator[None]:
    """The node agent, which serves pykubelet's CNI plugin and writes its conflist."""
    cluster.start_node(cluster_spec, NODE)
    try:
        yield
    finally:
        process.stop(cluster.agent_daemon(cluster_spec, NODE))


async def test_version_answers_runtime_v1(cluster_spec: ClusterSpec) -> None:
    async with RuntimeClient(f"unix://{cluster_spec.containerd_socket}") as rt:
        v = await rt.version()
    assert v.runtime_api_version == "v1"
    assert v.runtime_name == "containerd"
    assert v.runtime_version.startswith("1.6.")


async def _wait_exited(rt: RuntimeClient, cid: str) -> api.ContainerStatus:
    deadline = time.monotonic() + 30
    while True:
        status = (await rt.container_status(cid)).status
        if status.state == api.CONTAINER_EXITED or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def test_sandbox_with_busybox_runs_logs_and_is_removed(
    cluster_spec: ClusterSpec, tmp_path: Path, network: None
) -> None:
    uid = str(uuid.uuid4())
    logs = tmp_path / "pods" / uid
    logs.mkdir(parents=True)
    sandbox_config = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name="cri-test", namespace="default", uid=uid, attempt=0),
        hostname="cri-test",
        log_directory=str(logs),
        labels={
            "io.kubernetes.pod.name": "cri-test",
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.pod.uid": uid,
        },
        linux=api.LinuxPodSandboxConfig(),
    )
    async with RuntimeClient(f"unix://{cluster_spec.containerd_socket}") as rt:
        sandbox = await rt.run_pod_sandbox(sandbox_config)
        try:
            status = (await rt.pod_sandbox_status(sandbox)).status
            assert status.state == api.SANDBOX_READY
            assert status.network.ip, "the CNI plugin gave the sandbox no IP"
            config = api.ContainerConfig(
                metadata=api.ContainerMetadata(name="hello", attempt=0),
                image=api.ImageSpec(image=images.BUSYBOX_IMAGE),
                command=["sh", "-c", "echo hello from busybox; echo to-stderr >&2"],
                log_path="hello/0.log",
                labels={"io.kubernetes.container.name": "hello"},
            )
            cid = await rt.create_container(sandbox, config, sandbox_config)
            await rt.start_container(cid)
            exited = await _wait_exited(rt, cid)
            assert exited.state == api.CONTAINER_EXITED
            assert exited.exit_code == 0
            text = (logs / "hello" / "0.log").read_text()
            lines = text.splitlines()
            assert any(ln.endswith(" stdout F hello from busybox") for ln in lines), text
            assert any(ln.endswith(" stderr F to-stderr") for ln in lines), text
            await rt.remove_container(cid)
        finally:
            await rt.stop_pod_sandbox(sandbox)
            await rt.remove_pod_sandbox(sandbox)
        remaining = [s.id for s in await rt.list_pod_sandbox()]
        assert sandbox not in remaining
        assert not [c for c in await rt.list_containers() if c.pod_sandbox_id == sandbox]
