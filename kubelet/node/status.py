"""The Node object and its status as pure data: registration body, capacity, allocatable,
conditions with upstream reasons, and the rule for when a status write is due. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kube.facts import MachineFacts
from kube.jsontypes import JsonObject


@dataclass(frozen=True)
class Health:
    """What the agent knows of its own health when it computes the Ready condition."""

    runtime_ready: bool = True
    runtime_message: str = ""
    network_ready: bool = True
    network_message: str = ""
    pleg_healthy: bool = True
    pleg_message: str = ""
    memory_pressure: bool = False
    disk_pressure: bool = False
    pid_pressure: bool = False
    shutting_down: bool = False
    """logind announced a shutdown (graceful node shutdown): Ready turns False."""


@dataclass(frozen=True)
class NodeIdentity:
    """How the node presents itself: name, addresses, versions, endpoint port."""

    name: str
    internal_ips: tuple[str, ...]
    kubelet_version: str
    runtime_version: str
    """As upstream reports it, e.g. containerd://1.6.20."""
    port: int = 10250
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[JsonObject, ...] = ()
    pod_cidr: str | None = None


_PRESSURE = {
    # type: (flag, reason-if-false, message-if-false, reason-if-true, message-if-true)
    "MemoryPressure": (
        "memory_pressure",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
        "KubeletHasInsufficientMemory",
        "kubelet has insufficient memory available",
    ),
    "DiskPressure": (
        "disk_pressure",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
        "KubeletHasDiskPressure",
        "kubelet has disk pressure",
    ),
    "PIDPressure": (
        "pid_pressure",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
        "KubeletHasInsufficientPID",
        "kubelet has insufficient PID available",
    ),
}


def registration(ident: NodeIdentity, facts: MachineFacts) -> JsonObject:
    """The Node object POSTed at registration (labels and taints can only be set here)."""
    labels = {
        "kubernetes.io/hostname": ident.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": facts.architecture,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": facts.architecture,
        **ident.labels,
    }
    spec: JsonObject = {}
    if ident.taints:
        spec["taints"] = [dict(t) for t in ident.taints]
    if ident.pod_cidr:
        spec["podCIDR"] = ident.pod_cidr
        spec["podCIDRs"] = [ident.pod_cidr]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": ident.name, "labels": labels},
        "spec": spec,
    }


def capacity(facts: MachineFacts, max_pods: int) -> dict[str, str]:
    cap = {
        "cpu": str(facts.cpus),
        "memory": f"{facts.memory_bytes // 1024}Ki",
        "ephemeral-storage": f"{facts.ephemeral_storage_bytes // 1024}Ki",
        "pods": str(max_pods),
    }
    for size, total in sorted(facts.hugepages.items()):
        cap[f"hugepages-{size}"] = str(total)
    return cap


def allocatable(
    facts: MachineFacts,
    max_pods: int,
    *,
    reserved_memory_bytes: int = 0,
    reserved_storage_bytes: int = 0,
    reserved_millicpu: int = 0,
) -> dict[str, str]:
    """Capacity less what is reserved (kube/system reserved and hard eviction thresholds)."""
    hugepage_bytes = sum(facts.hugepages.values())
    mem = max(0, facts.memory_bytes - reserved_memory_bytes - hugepage_bytes)
    storage = max(0, facts.ephemeral_storage_bytes - reserved_storage_bytes)
    millicpu = max(0, facts.cpus * 1000 - reserved_millicpu)
    out = capacity(facts, max_pods)
    out["cpu"] = str(millicpu // 1000) if millicpu % 1000 == 0 else f"{millicpu}m"
    out["memory"] = f"{mem // 1024}Ki"
    out["ephemeral-storage"] = str(storage)
    return out


def _ready(health: Health) -> tuple[str, str, str]:
    problems = []
    if not health.runtime_ready:
        problems.append(f"container runtime is down: {health.runtime_message}".rstrip(": "))
    if not health.network_ready:
        problems.append("container runtime network not ready: " + health.network_message)
    if not health.pleg_healthy:
        problems.append("PLEG is not healthy: " + health.pleg_message)
    if health.shutting_down:
        problems.append("node is shutting down")
    if problems:
        return "False", "KubeletNotReady", "; ".join(problems)
    return "True", "KubeletReady", "kubelet is posting ready status"


def conditions(health: Health, previous: list[JsonObject], now: str) -> list[JsonObject]:
    """The four node conditions; lastTransitionTime is kept while a status stays the same."""
    prev = {c.get("type"): c for c in previous}
    out = []
    computed: list[tuple[str, str, str, str]] = []
    for ctype, (flag, r_false, m_false, r_true, m_true) in _PRESSURE.items():
        on = bool(getattr(health, flag))
        computed.append(
            (ctype, "True" if on else "False", r_true if on else r_false, m_true if on else m_false)
        )
    computed.append(("Ready", *_ready(health)))
    for ctype, status, reason, message in computed:
        old = prev.get(ctype, {})
        transition = old.get("lastTransitionTime") if old.get("status") == status else now
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": transition or now,
            }
        )
    return out


_PRESSURE_EVENTS = {
    # type: (event when it turns False, event when it turns True), upstream's setters
    "MemoryPressure": ("NodeHasSufficientMemory", "NodeHasInsufficientMemory"),
    "DiskPressure": ("NodeHasNoDiskPressure", "NodeHasDiskPressure"),
    "PIDPressure": ("NodeHasSufficientPID", "NodeHasInsufficientPID"),
}


def condition_events(previous: list[JsonObject], new: list[JsonObject]) -> list[str]:
    """Reasons of the Normal events upstream records when a pressure condition changes status
    (a condition not there before counts as Unknown, so a new Node gets one of each)."""
    prev = {c.get("type"): c.get("status", "Unknown") for c in previous}
    out = []
    for c in new:
        names = _PRESSURE_EVENTS.get(str(c.get("type")))
        status = c.get("status")
        changed = prev.get(c.get("type"), "Unknown") != status
        if names is not None and status in ("True", "False") and changed:
            out.append(names[status == "True"])
    return out


def node_status(
    ident: NodeIdentity,
    facts: MachineFacts,
    health: Health,
    *,
    previous: JsonObject,
    now: str,
    max_pods: int,
    alloc: dict[str, str] | None = None,
) -> JsonObject:
    """The full status the node owns, in API shape."""
    addresses = [{"type": "InternalIP", "address": ip} for ip in ident.internal_ips]
    addresses.append({"type": "Hostname", "address": ident.name})
    return {
        "capacity": capacity(facts, max_pods),
        "allocatable": alloc if alloc is not None else allocatable(facts, max_pods),
        "conditions": conditions(health, previous.get("conditions", []), now),
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": ident.port}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.system_uuid,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": ident.runtime_version,
            "kubeletVersion": ident.kubelet_version,
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    }


def _without_heartbeats(status: JsonObject) -> JsonObject:
    conds = [
        {k: v for k, v in c.items() if k != "lastHeartbeatTime"}
        for c in status.get("conditions", [])
    ]
    return {**status, "conditions": conds}


def write_due(
    previous: JsonObject, new: JsonObject, *, seconds_since_write: float, report_every: float
) -> bool:
    """Write when anything but heartbeat times changed, or the report interval has passed."""
    if seconds_since_write >= report_every:
        return True
    return _without_heartbeats(previous) != _without_heartbeats(new)
