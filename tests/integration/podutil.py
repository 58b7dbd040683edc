"""Helpers for pod tests: a node agent on the session cluster, pods through the API, waits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec

from .conftest import NODE

BUSYBOX = "docker.io/library/busybox:1.35"
Json = dict[str, Any]


def api_json(spec: ClusterSpec, path: str, *, method: str = "GET", body: object = None) -> Json:
    status, raw = cluster.api(spec, path, method=method, body=body)
    if status >= 300:
        raise AssertionError(f"{method} {path}: HTTP {status}: {raw[:300]!r}")
    result: Json = json.loads(raw) if raw else {}
    return result


def new_namespace(spec: ClusterSpec) -> str:
    ns = f"pt-{uuid.uuid4().hex[:8]}"
    api_json(
        spec,
        "/api/v1/namespaces",
        method="POST",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    )
    wait_for(
        lambda: cluster.api(spec, f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200,
        30,
        "default service account",
    )
    return ns


def pod_body(
    name: str,
    containers: list[Json],
    *,
    restart: str = "Always",
    init: list[Json] | None = None,
    grace: int | None = None,
) -> Json:
    spec: Json = {
        "nodeName": NODE,
        "restartPolicy": restart,
        "containers": containers,
        "automountServiceAccountToken": False,
    }
    if init:
        spec["initContainers"] = init
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def container(name: str, script: str, image: str = BUSYBOX) -> Json:
    return {
        "name": name,
        "image": image,
        "command": ["sh", "-c", script],
        "imagePullPolicy": "IfNotPresent",
    }


def create_pod(spec: ClusterSpec, ns: str, body: Json) -> Json:
    return api_json(spec, f"/api/v1/namespaces/{ns}/pods", method="POST", body=body)


def get_pod(spec: ClusterSpec, ns: str, name: str) -> Json | None:
    status, raw = cluster.api(spec, f"/api/v1/namespaces/{ns}/pods/{name}")
    if status == 404:
        return None
    assert status == 200, raw
    result: Json = json.loads(raw)
    return result


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def wait_pod(
    spec: ClusterSpec, ns: str, name: str, pred: Callable[[Json], bool], timeout: float, what: str
) -> Json:
    def check() -> Json | None:
        pod = get_pod(spec, ns, name)
        return pod if pod is not None and pred(pod) else None

    try:
        result: Json = wait_for(check, timeout, what)
    except AssertionError as e:
        raise AssertionError(
            f"{e}; pod now: {json.dumps((get_pod(spec, ns, name) or {}).get('status'))}"
        ) from None
    return result


def cstatus(pod: Json, name: str, *, init: bool = False) -> Json:
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in pod.get("status", {}).get(key, []) or []:
        if s["name"] == name:
            result: Json = s
            return result
    return {}


def waiting_reason(pod: Json, name: str, *, init: bool = False) -> str:
    return str(cstatus(pod, name, init=init).get("state", {}).get("waiting", {}).get("reason", ""))


def events(spec: ClusterSpec, ns: str, name: str) -> list[Json]:
    items: list[Json] = api_json(
        spec, f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3D{name}"
    )["items"]
    return items


@contextmanager
def agent_namespace(spec: ClusterSpec) -> Iterator[str]:
    """The node agent running on the session cluster and a fresh namespace; both cleaned up."""
    cluster.start_node(spec, NODE)
    namespace = new_namespace(spec)
    try:
        yield namespace
    finally:
        cluster.api(
            spec, f"/api/v1/namespaces/{namespace}/pods?gracePeriodSeconds=0", method="DELETE"
        )
        wait_for(
            lambda: not api_json(spec, f"/api/v1/namespaces/{namespace}/pods")["items"],
            30,
            "pods gone",
        )
        process.stop(cluster.agent_daemon(spec, NODE))
