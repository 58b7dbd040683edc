"""Memory-backed emptyDir size: node allocatable, the pod's memory limit, the volume's sizeLimit."""

from __future__ import annotations

from typing import Any

import pytest

from kube.quantity import QuantityError
from kubelet.volumes.memsize import empty_dir_memory_size, pod_memory_limit

Mi = 1024 * 1024
NODE = 1000 * Mi


def ctr(name: str, memory: str | None = None, **kw: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "img", **kw}
    if memory is not None:
        c["resources"] = {"limits": {"memory": memory}}
    return c


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any) -> Any:
    return {"spec": {"containers": list(containers), "initContainers": list(init), **spec}}


def vol(size: str | None = None) -> dict[str, Any]:
    ed: dict[str, Any] = {"medium": "Memory"}
    if size is not None:
        ed["sizeLimit"] = size
    return {"name": "m", "emptyDir": ed}


def test_pod_limit_needs_every_container_to_declare_memory() -> None:
    assert pod_memory_limit(pod(ctr("a", "100Mi"), ctr("b", "50Mi"))) == 150 * Mi
    assert pod_memory_limit(pod(ctr("a", "100Mi"), ctr("b"))) is None
    assert pod_memory_limit(pod(ctr("a", "100Mi"), init=(ctr("i"),))) is None
    assert pod_memory_limit(pod(ctr("a"))) is None


def test_pod_limit_init_peak_sidecars_and_overhead() -> None:
    big_init = pod(ctr("a", "100Mi"), init=(ctr("i", "300Mi"),))
    assert pod_memory_limit(big_init) == 300 * Mi
    sidecar = ctr("s", "20Mi", restartPolicy="Always")
    with_sidecar = pod(ctr("a", "100Mi"), init=(sidecar, ctr("i", "90Mi")))
    assert pod_memory_limit(with_sidecar) == 120 * Mi  # max(100+20, 90+20)
    overhead = pod(ctr("a", "100Mi"), overhead={"memory": "10Mi"})
    assert pod_memory_limit(overhead) == 110 * Mi


@pytest.mark.parametrize(
    ("containers", "size", "expected"),
    [
        ((ctr("a"),), None, NODE),  # no limits at all: node allocatable
        ((ctr("a", "200Mi"),), None, 200 * Mi),  # the pod's memory limit
        ((ctr("a", "200Mi"),), "64Mi", 64 * Mi),  # sizeLimit below the pod limit
        ((ctr("a", "200Mi"),), "300Mi", 200 * Mi),  # sizeLimit above it is ignored
        ((ctr("a"),), "2000Mi", NODE),  # above node allocatable: ignored
        ((ctr("a", "2000Mi"),), None, NODE),  # pod limit above allocatable: ignored
        ((ctr("a"),), "0", NODE),  # zero is no bound
    ],
)
def test_size_is_the_smallest_valid_bound(
    containers: tuple[dict[str, Any], ...], size: str | None, expected: int
) -> None:
    assert empty_dir_memory_size(pod(*containers), vol(size), NODE) == expected


def test_unknown_node_memory_keeps_the_other_bounds() -> None:
    assert empty_dir_memory_size(pod(ctr("a")), vol(), None) is None
    assert empty_dir_memory_size(pod(ctr("a", "200Mi")), vol("300Mi"), None) == 200 * Mi


def test_bad_size_limit_raises() -> None:
    with pytest.raises(QuantityError):
        empty_dir_memory_size(pod(ctr("a")), vol("lots"), NODE)
