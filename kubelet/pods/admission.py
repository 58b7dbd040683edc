"""Node-side pod admission (spec.os, sysctls, resource fit), the runAsNonRoot image-user check,
and the RuntimeClass -> CRI handler lookup, with upstream's reasons and messages. Reads the
typed Pod; only the resource fit still takes pod dicts (the active pods' requests).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from kube.apiserver import ApiClient, ApiError, NotFound
from kube.apiserver.requests import RUNTIMECLASSES
from kube.jsontypes import JsonMap, JsonObject
from kubelet.cgroups.planner import pod_requests
from kubelet.pods.model import Container, Pod

POD_OS_NOT_SUPPORTED = "PodOSNotSupported"
SYSCTL_FORBIDDEN = "SysctlForbidden"
NODE_OS = "linux"

SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
"""Upstream's safe set (pkg/kubelet/sysctl/safe_sysctls.go), always allowed."""

_IPC_SYSCTLS = ("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")


@dataclass(frozen=True)
class Rejection:
    """Why the node refuses a pod: the status reason and upstream's (unprefixed) message."""

    reason: str
    message: str


def _normalize_sysctl(name: str) -> str:
    """Upstream accepts '/' as separator (net/ipv4/...): use dots, as the kubelet does."""
    if "/" not in name:
        return name
    if "." not in name.split("/")[0]:
        return name.replace("/", ".")
    return name


def _sysctl_namespace(name: str) -> str:
    if name.startswith(_IPC_SYSCTLS):
        return "ipc"
    if name.startswith("net."):
        return "net"
    return ""


def _allowed(name: str, unsafe: Sequence[str]) -> bool:
    if name in SAFE_SYSCTLS:
        return True
    for pattern in unsafe:
        if pattern.endswith("*") and fnmatch.fnmatchcase(name, pattern):
            return True
        if pattern == name:
            return True
    return False


def _sysctl_error(name: str, pod: Pod, unsafe: Sequence[str]) -> str | None:
    if not _allowed(name, unsafe):
        return f'"{name}" not allowlisted'
    ns = _sysctl_namespace(name)
    if ns == "ipc" and pod.host_ipc:
        return f'"{name}" not allowed with host ipc enabled'
    if ns == "net" and pod.host_network:
        return f'"{name}" not allowed with host net enabled'
    return None


def check_sysctls(pod: Pod, allowed_unsafe_sysctls: Sequence[str] = ()) -> Rejection | None:
    """Upstream's sysctl allowlist admission: the safe set plus allowedUnsafeSysctls (exact
    names or prefixes ending in '*'); net.* and IPC sysctls are refused with hostNetwork and
    hostIPC respectively, since they would change the node's own settings."""
    for s in pod.sysctls:
        error = _sysctl_error(_normalize_sysctl(s.name), pod, allowed_unsafe_sysctls)
        if error is not None:
            return Rejection(SYSCTL_FORBIDDEN, f"forbidden sysctl: {error}")
    return None


def check_os(pod: Pod, node_os: str = NODE_OS) -> Rejection | None:
    """spec.os.name, when set, must be the node's OS (rejectPodAdmissionBasedOnOSField)."""
    os_name = pod.os_name
    if os_name and os_name != node_os:
        return Rejection(
            POD_OS_NOT_SUPPORTED, "Failed to admit pod as the OS field doesn't match node OS"
        )
    return None


@dataclass(frozen=True)
class NodeResources:
    """Node allocatable in numbers: millicores, bytes, pods."""

    millicpu: int
    memory: int
    pods: int


def _insufficient(name: str, requested: int, used: int, capacity: int) -> Rejection:
    """Upstream's InsufficientResourceError as the predicate admit handler reports it."""
    return Rejection(
        f"OutOf{name}",
        f"Node didn't have enough resource: {name}, requested: {requested}, used: {used}, "
        f"capacity: {capacity}",
    )


def check_resources(
    pod: JsonMap, others: Sequence[JsonMap], node: NodeResources
) -> Rejection | None:
    """The resource fit of the kubelet's predicate admission: pods first, then cpu and memory
    (requests of the active pods against allocatable); only the first failure is reported."""
    if len(others) + 1 > node.pods:
        return _insufficient("pods", 1, len(others), node.pods)
    want = pod_requests(pod)
    used = {"cpu": 0, "memory": 0}
    for other in others:
        for name, amount in pod_requests(other).items():
            used[name] += amount
    for name, capacity in (("cpu", node.millicpu), ("memory", node.memory)):
        if want[name] > 0 and want[name] > capacity - used[name]:
            return _insufficient(name, want[name], used[name], capacity)
    return None


def admit(pod: Pod, *, allowed_unsafe_sysctls: Sequence[str] = ()) -> Rejection | None:
    """None when the node accepts the pod, else the first rejection (OS first, as upstream)."""
    return check_os(pod) or check_sysctls(pod, allowed_unsafe_sysctls)


def rejected_status(rejection: Rejection, qos_class: str) -> JsonObject:
    """The status upstream's rejectPod writes: Failed, the reason, 'Pod was rejected: ...'."""
    return {
        "phase": "Failed",
        "reason": rejection.reason,
        "message": f"Pod was rejected: {rejection.message}",
        "qosClass": qos_class,
    }


def format_pod(pod: Pod) -> str:
    """Upstream's format.Pod: name_namespace(uid)."""
    return f"{pod.name}_{pod.namespace}({pod.uid})"


def needs_image_user(pod: Pod, container: Container) -> bool:
    """True when runAsNonRoot must be checked against the image's user (no runAsUser set)."""
    sc = container.security_context.over(pod.security_context)
    return sc.run_as_non_root is True and sc.run_as_user is None


def verify_run_as_non_root(
    pod: Pod, container: Container, uid: int | None, username: str
) -> str | None:
    """Upstream's verifyRunAsNonRoot: the error message, or None when the container may run.

    uid/username are the image's user as CRI ImageStatus reports it; an image with neither
    runs as root (uid 0), as upstream's getImageUser treats it."""
    sc = container.security_context.over(pod.security_context)
    if sc.run_as_non_root is not True:
        return None
    where = f'(pod: "{format_pod(pod)}", container: {container.name})'
    run_as_user = sc.run_as_user
    if run_as_user is not None:
        if run_as_user == 0:
            return f"container's runAsUser breaks non-root policy {where}"
        return None
    if uid is None and not username:
        uid = 0
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    if uid is None:
        return (
            f"container has runAsNonRoot and image has non-numeric user ({username}), "
            f"cannot verify user is non-root {where}"
        )
    return None


class RuntimeClassError(Exception):
    """The RuntimeClass of a pod could not be resolved: its sandbox cannot be created."""


class RuntimeClassNotFound(RuntimeClassError):
    """spec.runtimeClassName names a RuntimeClass the apiserver does not have."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f'RuntimeClass "{name}" not found')


class RuntimeClasses:
    """Looks RuntimeClasses (node.k8s.io/v1) up in the apiserver at sandbox creation."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def handler(self, name: str) -> str:
        """The CRI runtime handler of RuntimeClass `name`; '' for no name (the default)."""
        if not name:
            return ""
        try:
            rc = await self._client.get(RUNTIMECLASSES, name)
        except NotFound:
            raise RuntimeClassNotFound(name) from None
        except ApiError as e:
            raise RuntimeClassError(f"failed to lookup RuntimeClass {name}: {e}") from e
        return str(rc.get("handler") or "")
