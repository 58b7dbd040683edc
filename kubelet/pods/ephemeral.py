"""Ephemeral containers' runtime specifics: the event field path, finding the running target
container and joining its PID namespace (CRI NamespaceMode TARGET), as upstream does.
"""

from __future__ import annotations

from cri import api
from kubelet.pods.model import ContainerID, ContainerState, RuntimePod


def field_path(name: str) -> str:
    """The involvedObject.fieldPath of an ephemeral container's events."""
    return f"spec.ephemeralContainers{{{name}}}"


def target_error(target: str) -> str:
    return f"unable to find target container {target}"


def target_container_id(runtime: RuntimePod, target: str) -> ContainerID | None:
    """The newest instance of `target` when it is running, else None (upstream getTargetID)."""
    cur = runtime.latest(target)
    if cur is None or cur.state is not ContainerState.RUNNING:
        return None
    return cur.id


def join_target_pid(config: api.ContainerConfig, target_id: str) -> None:
    """Share the target's PID namespace, unless the pod already shares one (hostPID or
    shareProcessNamespace): only a per-container PID namespace is retargeted, as upstream."""
    ns = config.linux.security_context.namespace_options
    if ns.pid == api.CONTAINER:
        ns.pid = api.TARGET
        ns.target_id = target_id
