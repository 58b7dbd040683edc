"""Unit tests of the pod workers' metrics: the pod start and start SLI histograms (observed once,
not for adopted pods) and the worker duration by operation type.
"""

from __future__ import annotations

import time
from typing import Any, cast

from kubelet.metrics import REGISTRY
from kubelet.pods.model import ContainerState
from kubelet.pods.workers import Phase, PodWorkers, _Worker
from tests.unit.kubelet.pods.fixtures import UID, pod, running


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


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
