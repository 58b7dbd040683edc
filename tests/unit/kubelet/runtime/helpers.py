"""Plain-data pod builders shared by the kubelet.runtime tests (no fixtures, no side effects)."""

from __future__ import annotations

import copy
from typing import Any

BASE_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "uid": "1f0c6c9e-0000-4000-8000-000000000001",
        "labels": {"app": "web"},
        "annotations": {"note": "hello"},
    },
    "spec": {
        "terminationGracePeriodSeconds": 45,
        "containers": [
            {
                "name": "app",
                "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}},
            }
        ],
    },
}


def make_pod(
    spec: dict[str, Any] | None = None, container: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A deep copy of BASE_POD with `spec` keys merged in and the first container updated."""
    pod = copy.deepcopy(BASE_POD)
    pod["spec"].update(copy.deepcopy(spec or {}))
    pod["spec"]["containers"][0].update(copy.deepcopy(container or {}))
    return pod


def first(pod: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = pod["spec"]["containers"][0]
    return c
