"""Events about pods and the Node as users read them in `kubectl describe`: upstream reasons,
repeats counted. Recording never blocks or fails the caller; a background task posts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from dataclasses import dataclass

from kube.apiserver import EVENTS, ApiClient, ApiError, NotFound, PatchType
from kube.jsontypes import JsonObject

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
# Reasons (upstream names).
PULLING, PULLED, FAILED, BACK_OFF = "Pulling", "Pulled", "Failed", "BackOff"
CREATED, STARTED, KILLING = "Created", "Started", "Killing"
FAILED_CREATE_SANDBOX = "FailedCreatePodSandBox"
SANDBOX_CHANGED = "SandboxChanged"
EXCEEDED_GRACE = "ExceededGracePeriod"
INSPECT_FAILED = "InspectFailed"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
FAILED_TO_RETRIEVE_PULL_SECRET = "FailedToRetrieveImagePullSecret"
FAILED_SYNC = "FailedSync"


@dataclass(frozen=True)
class PodEvent:
    namespace: str
    pod: str
    uid: str
    type: str
    reason: str
    message: str
    field_path: str = ""


@dataclass(frozen=True)
class NodeEvent:
    """An event about the Node itself (status transitions), recorded as upstream's nodeRef:
    kind Node, uid the node's name, in the default namespace."""

    node: str
    type: str
    reason: str
    message: str


NODE_EVENT_NAMESPACE = "default"
AnyEvent = PodEvent | NodeEvent


def node_status_event(node: str, reason: str) -> NodeEvent:
    """Upstream's recordNodeStatusEvent: a Normal event "Node <name> status is now: <reason>"."""
    return NodeEvent(node, NORMAL, reason, f"Node {node} status is now: {reason}")


def container_field_path(name: str, *, init: bool = False) -> str:
    return f"spec.initContainers{{{name}}}" if init else f"spec.containers{{{name}}}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _namespace(ev: AnyEvent) -> str:
    return ev.namespace if isinstance(ev, PodEvent) else NODE_EVENT_NAMESPACE


def _object_name(ev: AnyEvent) -> str:
    return ev.pod if isinstance(ev, PodEvent) else ev.node


def event_body(ev: AnyEvent, *, node: str, name: str, now: str) -> JsonObject:
    involved: JsonObject
    if isinstance(ev, PodEvent):
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": ev.namespace,
            "name": ev.pod,
            "uid": ev.uid,
        }
        if ev.field_path:
            involved["fieldPath"] = ev.field_path
    else:
        involved = {"kind": "Node", "name": ev.node, "uid": ev.node}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": _namespace(ev)},
        "involvedObject": involved,
        "reason": ev.reason,
        "message": ev.message,
        "type": ev.type,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class EventRecorder:
    """Queues events; repeats of the same event within 10 minutes bump its count."""

    def __init__(self, client: ApiClient, node: str, *, max_queue: int = 1000) -> None:
        self._client = client
        self._node = node
        self._queue: asyncio.Queue[AnyEvent] = asyncio.Queue(max_queue)
        self._seen: dict[AnyEvent, tuple[str, int, float]] = {}

    def record_node(self, ev: NodeEvent) -> None:
        log.info("event node=%s %s %s: %s", ev.node, ev.type, ev.reason, ev.message)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(ev)

    def record(self, ev: PodEvent) -> None:
        log.info(
            "event pod=%s/%s uid=%s %s %s: %s",
            ev.namespace,
            ev.pod,
            ev.uid,
            ev.type,
            ev.reason,
            ev.message,
        )
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(ev)

    async def _post(self, ev: AnyEvent) -> None:
        now, mono = _now(), time.monotonic()
        seen = self._seen.get(ev)
        if seen is not None and mono - seen[2] < 600:
            name, count, _ = seen
            try:
                await self._client.patch(
                    EVENTS,
                    name,
                    {"count": count + 1, "lastTimestamp": now},
                    namespace=_namespace(ev),
                    patch_type=PatchType.MERGE,
                )
                self._seen[ev] = (name, count + 1, mono)
                return
            except NotFound:
                pass
        name = f"{_object_name(ev)}.{time.time_ns():x}"
        await self._client.create(
            EVENTS, event_body(ev, node=self._node, name=name, now=now), namespace=_namespace(ev)
        )
        self._seen[ev] = (name, 1, mono)
        if len(self._seen) > 5000:
            cutoff = mono - 600
            self._seen = {k: v for k, v in self._seen.items() if v[2] >= cutoff}

    async def run(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                await self._post(ev)
            except ApiError as e:
                log.warning(
                    "could not post event %s for %s/%s: %s",
                    ev.reason,
                    _namespace(ev),
                    _object_name(ev),
                    e,
                )
