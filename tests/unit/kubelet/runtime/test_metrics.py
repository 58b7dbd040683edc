"""Unit tests of the runtime's metrics: the CRI client's observe hook, the agent's hook that fills
the runtime operation metrics, the PLEG relist histogram, and upstream's operation_type names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from cri.client import RuntimeClient
from cri.errors import CRIError
from cri.fake import FakeRuntimeServer
from kubelet.metrics import REGISTRY, render
from kubelet.runtime import metrics
from kubelet.runtime.state import RuntimeCache


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def server() -> AsyncIterator[FakeRuntimeServer]:
    async with FakeRuntimeServer() as srv:
        yield srv


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("ListPodSandbox", "list_podsandbox"),
        ("RunPodSandbox", "run_podsandbox"),
        ("PodSandboxStatus", "podsandbox_status"),
        ("ListContainers", "list_containers"),
        ("ContainerStatus", "container_status"),
        ("ReopenContainerLog", "reopen_container_log"),
        ("UpdateContainerResources", "update_container"),
        ("ExecSync", "exec_sync"),
        ("Version", "version"),
    ],
)
def test_operation_type_uses_upstream_names(method: str, expected: str) -> None:
    assert metrics.operation_type(method) == expected


async def test_client_hook_reports_successes_and_failures(server: FakeRuntimeServer) -> None:
    seen: list[tuple[str, float, bool]] = []
    async with RuntimeClient(
        server.endpoint, observe=lambda m, s, ok: seen.append((m, s, ok))
    ) as rt:
        await rt.version()
        server.runtime.fail("Status", grpc.StatusCode.INTERNAL)
        with pytest.raises(CRIError):
            await rt.status()
    assert [(m, ok) for m, _, ok in seen] == [("Version", True), ("Status", False)]
    assert all(s >= 0 for _, s, _ in seen)


async def test_agent_hook_fills_runtime_metrics(server: FakeRuntimeServer) -> None:
    op = "list_containers"
    count = value("kubelet_runtime_operations_duration_seconds_count", operation_type=op)
    errors = value("kubelet_runtime_operations_errors_total", operation_type=op)
    async with RuntimeClient(server.endpoint, observe=metrics.observe_runtime_operation) as rt:
        await rt.list_containers()
        server.runtime.fail("ListContainers", grpc.StatusCode.UNAVAILABLE)
        with pytest.raises(CRIError):
            await rt.list_containers(deadline=2)
    after = value("kubelet_runtime_operations_duration_seconds_count", operation_type=op)
    assert after == count + 2
    assert value("kubelet_runtime_operations_errors_total", operation_type=op) == errors + 1
    assert b"kubelet_runtime_operations_total" in render()


async def test_relist_is_observed(server: FakeRuntimeServer) -> None:
    before = value("kubelet_pleg_relist_duration_seconds_count")
    async with RuntimeClient(server.endpoint) as rt:
        cache = RuntimeCache(rt, on_change=lambda uid: None)
        await cache.relist()
        server.runtime.fail("ListPodSandbox", grpc.StatusCode.UNAVAILABLE)
        with pytest.raises(CRIError):
            await cache.relist()
    assert value("kubelet_pleg_relist_duration_seconds_count") == before + 2
