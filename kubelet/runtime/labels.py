"""The io.kubernetes.* labels/annotations on CRI sandboxes and containers, and reading them back.
Pure string maps only: no CRI calls and no protobuf building (criconfig.py does that).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from kube.jsontypes import JsonMap

# Keys as upstream's kubelet spells them (pkg/kubelet/types and kuberuntime/labels.go).
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_HASH = "io.kubernetes.container.hash"
CONTAINER_RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
POD_TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
POD_DELETION_GRACE = "io.kubernetes.pod.deletionGracePeriod"
PRE_STOP_HANDLER = "io.kubernetes.container.preStopHandler"
CONTAINER_PORTS = "io.kubernetes.container.ports"

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_TERMINATION_MESSAGE_POLICY = "File"
DEFAULT_GRACE_SECONDS = 30

# Container spec fields left out of the hash: resources can be resized in place (upstream's
# InPlacePodVerticalScaling), so a change to them must not restart the container.
HASH_EXCLUDED_FIELDS = frozenset({"resources"})

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


@dataclass(frozen=True)
class PodRef:
    """Which pod a sandbox (or container) belongs to, as read back from its labels."""

    uid: str
    namespace: str
    name: str


@dataclass(frozen=True)
class ContainerRef:
    """What a restarted agent needs to adopt (or kill) a container without its pod spec."""

    name: str
    restart_count: int = 0
    hash: str = ""
    termination_message_path: str = DEFAULT_TERMINATION_MESSAGE_PATH
    termination_message_policy: str = DEFAULT_TERMINATION_MESSAGE_POLICY
    grace: int = DEFAULT_GRACE_SECONDS
    pre_stop: JsonMap | None = None
    ports: tuple[JsonMap, ...] = field(default_factory=tuple)


def _meta(pod: JsonMap) -> JsonMap:
    meta = pod.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _pod_keys(pod: JsonMap) -> dict[str, str]:
    meta = _meta(pod)
    return {
        POD_NAME: str(meta.get("name") or ""),
        POD_NAMESPACE: str(meta.get("namespace") or "default"),
        POD_UID: str(meta.get("uid") or ""),
    }


def sandbox_labels(pod: JsonMap) -> dict[str, str]:
    """The pod's own labels plus the three io.kubernetes.pod.* keys (which win on a clash)."""
    labels = _str_map(_meta(pod).get("labels"))
    labels.update(_pod_keys(pod))
    return labels


def sandbox_annotations(pod: JsonMap) -> dict[str, str]:
    """The pod's annotations, unchanged (upstream passes them through to the runtime)."""
    return _str_map(_meta(pod).get("annotations"))


def container_labels(pod: JsonMap, container: JsonMap) -> dict[str, str]:
    """The four identity labels: container name and the pod's name, namespace and UID."""
    labels = _pod_keys(pod)
    labels[CONTAINER_NAME] = str(container.get("name") or "")
    return labels


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def container_annotations(
    pod: JsonMap,
    container: JsonMap,
    *,
    restart_count: int,
    spec_hash: str | None = None,
) -> dict[str, str]:
    """Hash, restart count, termination message settings, grace periods, preStop and ports.

    `spec_hash` overrides container_hash(container) when the caller already holds the hash its
    planner compares against, so the two can never disagree.
    """
    ann = {
        CONTAINER_HASH: spec_hash if spec_hash is not None else container_hash(container),
        CONTAINER_RESTART_COUNT: str(restart_count),
        TERMINATION_MESSAGE_PATH: str(
            container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
        ),
        TERMINATION_MESSAGE_POLICY: str(
            container.get("terminationMessagePolicy") or DEFAULT_TERMINATION_MESSAGE_POLICY
        ),
    }
    deletion_grace = _meta(pod).get("deletionGracePeriodSeconds")
    if isinstance(deletion_grace, int) and not isinstance(deletion_grace, bool):
        ann[POD_DELETION_GRACE] = str(deletion_grace)
    spec = pod.get("spec")
    grace = spec.get("terminationGracePeriodSeconds") if isinstance(spec, Mapping) else None
    if isinstance(grace, int) and not isinstance(grace, bool):
        ann[POD_TERMINATION_GRACE] = str(grace)
    lifecycle = container.get("lifecycle")
    pre_stop = lifecycle.get("preStop") if isinstance(lifecycle, Mapping) else None
    if pre_stop:
        ann[PRE_STOP_HANDLER] = _dump(pre_stop)
    ports = container.get("ports")
    if ports:
        ann[CONTAINER_PORTS] = _dump(ports)
    return ann


def _canonical(value: object) -> object:
    """Drop null and empty values at every depth so that absent and empty hash the same."""
    if isinstance(value, Mapping):
        out = {str(k): _canonical(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a, the hash upstream's kubelet uses for container specs."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def container_hash(container: JsonMap) -> str:
    """8 hex chars over the container spec minus HASH_EXCLUDED_FIELDS; stable across runs.

    Choice: the whole spec (canonical JSON, sorted keys, nulls and empties dropped) except
    `resources`, so that any change that needs a new container changes the hash and an in-place
    resize does not. Upstream since 1.31 hashes only name and image because the rest of a pod's
    spec is immutable; hashing more is equivalent for apiserver pods and also catches edits to
    static pod manifests that keep the pod's UID.
    """
    spec = {k: v for k, v in container.items() if k not in HASH_EXCLUDED_FIELDS}
    return f"{fnv1a_32(_dump(_canonical(spec)).encode()):08x}"


def read_pod_ref(labels: Mapping[str, str]) -> PodRef | None:
    """The owning pod from sandbox or container labels; None when not made by a kubelet."""
    uid = labels.get(POD_UID, "")
    if not uid:
        return None
    return PodRef(uid=uid, namespace=labels.get(POD_NAMESPACE, ""), name=labels.get(POD_NAME, ""))


def _int(value: str | None, default: int, *, minimum: int = 0) -> int:
    try:
        n = int(value) if value is not None else default
    except ValueError:
        return default
    return n if n >= minimum else default


def _json(value: str | None) -> object:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _grace(annotations: Mapping[str, str]) -> int:
    """Deletion grace when the pod was being deleted, else the spec's, else 30 s (as upstream)."""
    termination = _int(annotations.get(POD_TERMINATION_GRACE), DEFAULT_GRACE_SECONDS)
    return _int(annotations.get(POD_DELETION_GRACE), termination)


def read_container_ref(
    labels: Mapping[str, str], annotations: Mapping[str, str]
) -> ContainerRef | None:
    """A container's identity and kill settings; None without a container name label.

    Missing or garbled values fall back to defaults: restart count 0, File policy at
    /dev/termination-log, grace = deletion grace, else termination grace, else 30 s. A garbled
    preStop or ports annotation reads as absent.
    """
    name = labels.get(CONTAINER_NAME, "")
    if not name:
        return None
    pre_stop = _json(annotations.get(PRE_STOP_HANDLER))
    ports = _json(annotations.get(CONTAINER_PORTS))
    return ContainerRef(
        name=name,
        restart_count=_int(annotations.get(CONTAINER_RESTART_COUNT), 0),
        hash=annotations.get(CONTAINER_HASH, ""),
        termination_message_path=annotations.get(TERMINATION_MESSAGE_PATH)
        or DEFAULT_TERMINATION_MESSAGE_PATH,
        termination_message_policy=annotations.get(TERMINATION_MESSAGE_POLICY)
        or DEFAULT_TERMINATION_MESSAGE_POLICY,
        grace=_grace(annotations),
        pre_stop=pre_stop if isinstance(pre_stop, dict) else None,
        ports=tuple(p for p in ports if isinstance(p, dict)) if isinstance(ports, list) else (),
    )
