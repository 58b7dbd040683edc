"""Unit tests of the agent's metric call sites: the CRI client's observe hook, the PLEG relist
histogram, the pod worker and pod start histograms, and upstream's operation_type names.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest

from cri.client import RuntimeClient
from cri.errors import CRIError
from cri.fake import FakeRuntimeServer
from kubelet.pods.model import ContainerState
from kubelet.pods.workers import Phase, PodWorkers, _Worker
from kubelet.runtime.state import RuntimeCache
from kubelet.server import metrics
from tests.unit.kubelet.pods.fixtures import UID, pod, running


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


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
    assert b"kubelet_runtime_operations_total" in metrics.render()


async def test_relist_is_observed(server: FakeRuntimeServer) -> None:
    before = value("kubelet_pleg_relist_duration_seconds_count")
    async with RuntimeClient(server.endpoint) as rt:
        cache = RuntimeCache(rt, on_change=lambda uid: None)
        await cache.relist()
        server.runtime.fail("ListPodSandbox", grpc.StatusCode.UNAVAILABLE)
        with pytest.raises(CRIError):
            await cache.relist()
    assert value("kubelet_pleg_relist_duration_seconds_count") == before + 2


def _workers() -> PodWorkers:
    none = cast(Any, None)
    return PodWorkers(
        client=none,
        cache=none,
        executor=none,
        events=none,
        images=none,
        volumes=none,
        teardown=none,
        status=none,
        backoff=none,
        host_ips=lambda: (),
    )


def test_pod_start_observed_once_when_all_containers_run() -> None:
    from kubelet.pods.model import RuntimePod

    workers = _workers()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    w = _Worker({"metadata": {"uid": UID, "creationTimestamp": created}})
    w.first_seen -= 2
    p = pod("a", "b")
    start = value("kubelet_pod_start_duration_seconds_count")
    sli = value("kubelet_pod_start_sli_duration_seconds_count")
    sli_sum = value("kubelet_pod_start_sli_duration_seconds_sum")
    half = RuntimePod(uid=UID, containers=(running("a"),))
    workers._observe_start(w, p, half, {})
    assert value("kubelet_pod_start_duration_seconds_count") == start
    both = RuntimePod(uid=UID, containers=(running("a"), running("b")))
    assert all(c.state == ContainerState.RUNNING for c in both.containers)
    workers._observe_start(w, p, both, {"phase": "Pending"})
    workers._observe_start(w, p, both, {"phase": "Running"})
    assert value("kubelet_pod_start_duration_seconds_count") == start + 1
    assert value("kubelet_pod_start_sli_duration_seconds_count") == sli + 1
    assert value("kubelet_pod_start_sli_duration_seconds_sum") - sli_sum >= 4


def test_adopted_running_pod_is_not_counted() -> None:
    from kubelet.pods.model import RuntimePod

    workers = _workers()
    w = _Worker({"metadata": {"uid": UID}})
    start = value("kubelet_pod_start_duration_seconds_count")
    workers._observe_start(
        w, pod("a"), RuntimePod(uid=UID, containers=(running("a"),)), {"phase": "Running"}
    )
    assert w.start_observed
    assert value("kubelet_pod_start_duration_seconds_count") == start


async def test_worker_duration_labels_create_then_sync() -> None:
    workers = _workers()

    async def fake_sync(uid: object, w: _Worker) -> bool:
        return False

    workers._sync = fake_sync  # type: ignore[method-assign]
    w = _Worker({"metadata": {"uid": UID}})
    name = "kubelet_pod_worker_duration_seconds_count"
    create, sync, kill = (value(name, operation_type=t) for t in ("create", "sync", "kill"))
    await workers._timed_sync(UID, w)
    await workers._timed_sync(UID, w)
    w.phase = Phase.TERMINATING
    await workers._timed_sync(UID, w)
    assert value(name, operation_type="create") == create + 1
    assert value(name, operation_type="sync") == sync + 1
    assert value(name, operation_type="kill") == kill + 1
