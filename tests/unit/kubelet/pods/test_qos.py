"""QoS class: upstream's GetPodQOS cases (pkg/apis/core/helper/qos tests) on the typed model,
from apiserver JSON too, and the pod-level resources that decide alone when set.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubelet.pods.decode import pod_from_api
from kubelet.pods.model import PodSpecError
from kubelet.pods.qos import QOSClass, qos_class, qos_class_of
from tests.unit.kubelet.pods.fixtures import ctr, pod, sidecar

CPU_MEM = {"cpu": "100m", "memory": "100Mi"}


def res(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> Any:
    out: dict[str, Any] = {}
    if requests is not None:
        out["requests"] = requests
    if limits is not None:
        out["limits"] = limits
    return out


G, B, BE = QOSClass.GUARANTEED, QOSClass.BURSTABLE, QOSClass.BEST_EFFORT


@pytest.mark.parametrize(
    ("containers", "inits", "want"),
    [
        # best effort: nothing, zero amounts, or only non-QoS resources
        ([res()], [], BE),
        ([res(), res()], [], BE),
        ([res({"cpu": "0", "memory": "0"}, {"cpu": "0", "memory": "0"})], [], BE),
        ([res(limits={"nvidia.com/gpu": "2"})], [], BE),
        ([res({"ephemeral-storage": "1Gi"})], [], BE),
        # guaranteed: every container limits cpu and memory, requests equal limits
        ([res(CPU_MEM, CPU_MEM)], [], G),
        ([res(CPU_MEM, CPU_MEM), res(CPU_MEM, CPU_MEM)], [], G),
        ([res({**CPU_MEM, "nvidia.com/gpu": "2"}, {**CPU_MEM, "nvidia.com/gpu": "2"})], [], G),
        # limits only imply equal requests (the apiserver's defaulting)
        ([res(limits=CPU_MEM)], [], G),
        ([res({"cpu": "0.1", "memory": "104857600"}, CPU_MEM)], [], G),
        # requests only
        ([res({"cpu": "100m"})], [], B),
        ([res(CPU_MEM)], [], B),
        # limits only on one resource
        ([res(limits={"memory": "1Gi"})], [], B),
        # requests below limits, or a container without limits next to a guaranteed one
        ([res({"cpu": "50m", "memory": "100Mi"}, CPU_MEM)], [], B),
        ([res(CPU_MEM, CPU_MEM), res()], [], B),
        ([res(CPU_MEM, CPU_MEM), res({"cpu": "100m"})], [], B),
        # init containers count like regular ones
        ([res(CPU_MEM, CPU_MEM)], [res(CPU_MEM, CPU_MEM)], G),
        ([res(CPU_MEM, CPU_MEM)], [res()], B),
        ([res(CPU_MEM, CPU_MEM)], [res({"memory": "1Gi"})], B),
        ([res()], [res({"memory": "1Gi"})], B),
        ([res()], [res(limits=CPU_MEM)], B),
    ],
)
def test_container_resources(containers: list[Any], inits: list[Any], want: QOSClass) -> None:
    p = pod(
        *(ctr(f"c{i}", resources=r) for i, r in enumerate(containers)),
        init=tuple(ctr(f"i{i}", resources=r) for i, r in enumerate(inits)),
    )
    assert qos_class(p) == want


def test_sidecars_count_as_init_containers() -> None:
    p = pod(ctr("c", resources=res(CPU_MEM, CPU_MEM)), init=(sidecar("s"),))
    assert qos_class(p) == B


@pytest.mark.parametrize(
    ("pod_level", "containers", "want"),
    [
        (res(CPU_MEM, CPU_MEM), [res()], G),
        (res(limits=CPU_MEM), [res()], G),
        (res(CPU_MEM), [res(CPU_MEM, CPU_MEM)], B),
        (res({"cpu": "50m", "memory": "100Mi"}, CPU_MEM), [res()], B),
        (res(limits={"cpu": "1"}), [res(CPU_MEM, CPU_MEM)], B),
        (res({"cpu": "0"}), [res(CPU_MEM, CPU_MEM)], BE),
    ],
)
def test_pod_level_resources_decide_alone(
    pod_level: Any, containers: list[Any], want: QOSClass
) -> None:
    p = pod(*(ctr(f"c{i}", resources=r) for i, r in enumerate(containers)), resources=pod_level)
    assert qos_class(p) == want


def test_ephemeral_containers_never_count() -> None:
    p = pod(ctr("c", resources=res(CPU_MEM, CPU_MEM)), ephemeral_containers=(ctr("debug"),))
    assert qos_class(p) == G


def _api_pod(spec: dict[str, Any]) -> dict[str, Any]:
    containers = [{"name": "c", "image": "busybox:1.35", "resources": res(CPU_MEM, CPU_MEM)}]
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"containers": containers, **spec},
    }


def test_from_api_json() -> None:
    assert qos_class_of(_api_pod({})) == G
    assert qos_class_of(_api_pod({"resources": res({"memory": "1Gi"})})) == B


def test_bad_pod_level_quantity_names_the_field() -> None:
    bad = _api_pod({"resources": res(limits={"cpu": "lots"})})
    with pytest.raises(PodSpecError, match=r"spec\.resources\.limits\.cpu"):
        pod_from_api(bad)
    assert qos_class_of(bad) == BE  # not decoded yet: the bad amount never counts


def test_from_api_json_reads_only_resources() -> None:
    assert qos_class_of({"spec": {"containers": [{"resources": res(CPU_MEM)}]}}) == B
    assert qos_class_of({}) == BE


def test_value_is_the_api_string() -> None:
    assert [q.value for q in QOSClass] == ["Guaranteed", "Burstable", "BestEffort"]
