"""Finds the runtime objects a :10250 request names (pod sandbox, container, previous instance)
through CRI labels. Read-only CRI calls; knows no HTTP beyond the HTTPError it raises.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cri import api
from cri.client import RuntimeClient
from kube.apiserver import ApiError, JsonObject
from kubelet.runtime import labels

log = logging.getLogger(__name__)


class HTTPError(Exception):
    """A request that ends with an HTTP error status and a message naming the object."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str

    @property
    def display(self) -> str:
        return f"{self.namespace}/{self.name}"


def restart_count(c: api.Container) -> int:
    try:
        return int(c.annotations.get(labels.CONTAINER_RESTART_COUNT, "0"))
    except ValueError:
        return 0


def newest_first(containers: list[api.Container]) -> list[api.Container]:
    """Instances of one container, the newest first (restartCount annotation, then creation)."""
    return sorted(containers, key=lambda c: (restart_count(c), c.created_at), reverse=True)


def spec_containers(pod: JsonObject) -> set[str]:
    spec = pod.get("spec") or {}
    kinds = ("containers", "initContainers", "ephemeralContainers")
    return {c.get("name", "") for k in kinds for c in spec.get(k) or ()}


async def check_spec(
    pods: Callable[[], Awaitable[list[JsonObject]]], pod: PodRef, container: str | None
) -> None:
    """404 unless the node runs `pod` and its spec has `container` (skipped if the list fails)."""
    try:
        items = await pods()
    except ApiError as e:
        log.warning("pod list unavailable, not checking %s: %s", pod.display, e)
        return
    for p in items:
        meta = p.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) != (pod.namespace, pod.name):
            continue
        if container is not None and container not in spec_containers(p):
            raise HTTPError(404, f'container "{container}" not found in pod "{pod.name}"')
        return
    raise HTTPError(404, f'pod "{pod.name}" does not exist in namespace "{pod.namespace}"')


async def sandbox(runtime: RuntimeClient, pod: PodRef) -> api.PodSandbox:
    """The pod's newest sandbox (a ready one if there is one); 404 when the node has none."""
    selector = {labels.POD_NAMESPACE: pod.namespace, labels.POD_NAME: pod.name}
    found = await runtime.list_pod_sandbox(filter=api.PodSandboxFilter(label_selector=selector))
    if not found:
        raise HTTPError(404, f'pod "{pod.name}" does not exist in namespace "{pod.namespace}"')
    ready = api.PodSandboxState.Value("SANDBOX_READY")
    return max(found, key=lambda s: (s.state == ready, s.created_at))


async def instances(runtime: RuntimeClient, pod: PodRef, container: str) -> list[api.Container]:
    """Every instance of `container` in the pod's current UID, newest first; 404 if none."""
    box = await sandbox(runtime, pod)
    uid = box.labels.get(labels.POD_UID, "")
    selector = {labels.POD_UID: uid, labels.CONTAINER_NAME: container}
    found = await runtime.list_containers(filter=api.ContainerFilter(label_selector=selector))
    if not found:
        raise HTTPError(
            400,
            f'container "{container}" in pod "{pod.name}" is waiting to start: ContainerCreating',
        )
    return newest_first(found)


async def log_target(
    runtime: RuntimeClient, pod: PodRef, container: str, *, previous: bool
) -> api.Container:
    """The instance whose log is read: the newest, or the one before it with `previous`."""
    found = await instances(runtime, pod, container)
    if not previous:
        return found[0]
    if len(found) < 2:
        raise HTTPError(
            400, f'previous terminated container "{container}" in pod "{pod.name}" not found'
        )
    return found[1]


async def running(runtime: RuntimeClient, pod: PodRef, container: str) -> api.Container:
    """The running instance, for exec and attach; 404 naming the container otherwise."""
    state = api.ContainerState.Value("CONTAINER_RUNNING")
    for c in await instances(runtime, pod, container):
        if c.state == state:
            return c
    raise HTTPError(404, f'container "{container}" in pod "{pod.display}" is not running')
