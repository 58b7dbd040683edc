"""Pure cgroup planning as upstream's pkg/kubelet/cm does it: cgroup names per driver, a pod's
resources (ResourceConfigForPod), the QoS tiers' and the kubepods cgroup's. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from kube.jsontypes import JsonMap
from kube.quantity import QuantityError, parse_cpu, parse_memory
from kubelet.pods.qos import QOSClass, qos_class_of
from kubelet.runtime.criconfig import (
    MIN_SHARES,
    QUOTA_PERIOD_US,
    milli_cpu_to_quota,
    milli_cpu_to_shares,
)

Parts = Sequence[str]
KUBEPODS = "kubepods"
POD_PREFIX = "pod"
TIERS: dict[str, str] = {QOSClass.BURSTABLE: "burstable", QOSClass.BEST_EFFORT: "besteffort"}
MAX_WEIGHT = 10000


@dataclass(frozen=True)
class Resources:
    """What a cgroup is given; None leaves the kernel's value (upstream's ResourceConfig)."""

    cpu_shares: int | None = None
    cpu_quota: int | None = None
    """Microseconds per period; -1 means no limit."""
    cpu_period: int | None = None
    memory_limit: int | None = None
    """Bytes; None or 0 leaves it unlimited."""
    pids_limit: int | None = None


def cpu_shares_to_weight(shares: int) -> int:
    """cgroup v2 cpu.weight from v1 shares: [2, 262144] onto [1, 10000] (upstream's formula)."""
    shares = max(MIN_SHARES, min(262144, shares))
    return 1 + ((shares - 2) * 9999) // 262142


# ---------------------------------------------------------------------------- names


def root_parts(cgroup_root: str) -> tuple[str, ...]:
    return tuple(p for p in cgroup_root.split("/") if p)


def node_parts(cgroup_root: str, cgroups_per_qos: bool = True) -> tuple[str, ...]:
    """The cgroup all pods live under: <root>/kubepods (just <root> without per-QoS cgroups)."""
    return (*root_parts(cgroup_root), KUBEPODS) if cgroups_per_qos else root_parts(cgroup_root)


def tier_parts(cgroup_root: str, qos: str) -> tuple[str, ...]:
    """Guaranteed pods sit right under kubepods; the others under their tier."""
    base = node_parts(cgroup_root)
    return (*base, TIERS[qos]) if qos in TIERS else base


def pod_parts(
    cgroup_root: str, qos: str, uid: str, cgroups_per_qos: bool = True
) -> tuple[str, ...]:
    if not cgroups_per_qos:
        return (*node_parts(cgroup_root, False), POD_PREFIX + uid)
    return (*tier_parts(cgroup_root, qos), POD_PREFIX + uid)


def cgroupfs_name(parts: Sequence[str]) -> str:
    return "/" + "/".join(parts)


def systemd_name(parts: Sequence[str]) -> str:
    """Upstream's ToSystemd: each component a slice nested in its parents' ("-" becomes "_"),
    expanded to the path (/kubepods.slice/kubepods-burstable.slice/...)."""
    if not parts:
        return "/"
    escaped = [p.replace("-", "_") for p in parts]
    return "/" + "/".join("-".join(escaped[: i + 1]) + ".slice" for i in range(len(escaped)))


def pod_uid_of(directory: str) -> str | None:
    """The pod UID a pod cgroup directory is for: pod<uid> (cgroupfs) or
    ...-pod<uid with _ for ->.slice (systemd); None for anything else."""
    if directory.endswith(".slice"):
        stem = directory.removesuffix(".slice")
        start = stem.rfind("-" + POD_PREFIX) + 1 if "-" in stem else 0
        uid = pod_uid_of(stem[start:])
        return uid.replace("_", "-") if uid is not None else None
    if directory.startswith(POD_PREFIX) and len(directory) > len(POD_PREFIX) + 8:
        return directory[len(POD_PREFIX) :]
    return None


def fs_parts(parts: Sequence[str], driver: str) -> tuple[str, ...]:
    """The directories a cgroup is at: its components (cgroupfs) or its nested slices."""
    if driver == "systemd" and parts:
        return tuple(systemd_name(parts).strip("/").split("/"))
    return tuple(parts)


# ---------------------------------------------------------------------------- pod resources


def _list(obj: JsonMap, key: str) -> list[JsonMap]:
    value = obj.get(key)
    return [c for c in value if isinstance(c, Mapping)] if isinstance(value, list) else []


def _amount(values: object, name: str) -> int:
    if not isinstance(values, Mapping) or name not in values:
        return 0
    try:
        return parse_cpu(values[name]) if name == "cpu" else parse_memory(values[name])
    except QuantityError:
        return 0


def _container_amounts(c: JsonMap, key: str) -> dict[str, int]:
    res = c.get("resources") if isinstance(c.get("resources"), Mapping) else {}
    assert isinstance(res, Mapping)
    limits = res.get("limits") or {}
    values = limits if key == "limits" else {**limits, **(res.get("requests") or {})}
    return {name: _amount(values, name) for name in ("cpu", "memory")}


def _pod_amounts(spec: JsonMap, key: str) -> dict[str, int]:
    """Upstream's PodRequests/PodLimits: regular containers and sidecars summed, or the largest
    init container (with the sidecars started before it), whichever is more, plus overhead."""
    total = {"cpu": 0, "memory": 0}
    sidecars = {"cpu": 0, "memory": 0}
    init_peak = {"cpu": 0, "memory": 0}
    for c in _list(spec, "initContainers"):
        amounts = _container_amounts(c, key)
        if c.get("restartPolicy") == "Always":
            for k in total:
                sidecars[k] += amounts[k]
                init_peak[k] = max(init_peak[k], sidecars[k])
        else:
            for k in total:
                init_peak[k] = max(init_peak[k], amounts[k] + sidecars[k])
    for c in _list(spec, "containers"):
        amounts = _container_amounts(c, key)
        for k in total:
            total[k] += amounts[k]
    overhead = spec.get("overhead") or {}
    return {k: max(total[k] + sidecars[k], init_peak[k]) + _amount(overhead, k) for k in total}


def pod_requests(pod: JsonMap) -> dict[str, int]:
    """cpu (millicores) and memory (bytes) the pod requests, as the scheduler counts them."""
    return _pod_amounts(pod.get("spec") or {}, "requests")


def _limits_declared(spec: JsonMap) -> tuple[bool, bool]:
    cpu = memory = True
    for c in (*_list(spec, "initContainers"), *_list(spec, "containers")):
        limits = _container_amounts(c, "limits")
        cpu = cpu and limits["cpu"] > 0
        memory = memory and limits["memory"] > 0
    return cpu, memory


def pod_resources(
    pod: JsonMap, *, pids_limit: int = -1, enforce_cpu_limits: bool = True
) -> Resources:
    """ResourceConfigForPod: Guaranteed gets shares, quota and the memory limit; Burstable the
    shares, plus quota / memory only when every container declares that limit; BestEffort the
    minimum shares. podPidsLimit > 0 applies to every pod."""
    spec = pod.get("spec") or {}
    requests, limits = _pod_amounts(spec, "requests"), _pod_amounts(spec, "limits")
    shares = milli_cpu_to_shares(requests["cpu"])
    quota = milli_cpu_to_quota(limits["cpu"]) if enforce_cpu_limits else -1
    pids = pids_limit if pids_limit > 0 else None
    qos = qos_class_of(pod)
    if qos == QOSClass.GUARANTEED:
        return Resources(shares, quota, QUOTA_PERIOD_US, limits["memory"], pids)
    if qos == QOSClass.BURSTABLE:
        cpu_declared, memory_declared = _limits_declared(spec)
        return Resources(
            cpu_shares=shares,
            cpu_quota=quota if cpu_declared else None,
            cpu_period=QUOTA_PERIOD_US if cpu_declared else None,
            memory_limit=limits["memory"] if memory_declared else None,
            pids_limit=pids,
        )
    return Resources(cpu_shares=MIN_SHARES, pids_limit=pids)


def qos_tier_resources(pods: Iterable[JsonMap]) -> dict[str, Resources]:
    """setCPUCgroupConfig: besteffort always gets the minimum shares, burstable the shares of
    the summed CPU requests of the active Burstable pods."""
    burstable = (p for p in pods if qos_class_of(p) == QOSClass.BURSTABLE)
    burstable_milli = sum(pod_requests(p)["cpu"] for p in burstable)
    return {
        QOSClass.BURSTABLE: Resources(cpu_shares=milli_cpu_to_shares(burstable_milli)),
        QOSClass.BEST_EFFORT: Resources(cpu_shares=MIN_SHARES),
    }


def reserved_resources(reserved: Mapping[str, str], compressible_only: bool = False) -> Resources:
    """A kube-/system-reserved cgroup's limits (upstream's getCgroupConfig): cpu shares for the
    reserved CPU; unless only compressible resources are enforced, the memory limit and
    pids.max too. Unparsable or absent amounts leave the kernel's value."""

    def amount(name: str, parse: Callable[[object], int]) -> int | None:
        if name not in reserved:
            return None
        try:
            return parse(reserved[name])
        except QuantityError:
            return None

    cpu = amount("cpu", parse_cpu)
    memory = None if compressible_only else amount("memory", parse_memory)
    pids = None if compressible_only else amount("pid", parse_memory)
    return Resources(
        cpu_shares=milli_cpu_to_shares(cpu) if cpu is not None else None,
        memory_limit=memory if memory else None,
        pids_limit=pids if pids else None,
    )


def node_resources(millicpu: int, memory_bytes: int, pids: int | None = None) -> Resources:
    """The kubepods cgroup (getCgroupConfig): shares for the CPUs, the memory limit, pids."""
    return Resources(
        cpu_shares=milli_cpu_to_shares(millicpu),
        memory_limit=memory_bytes if memory_bytes > 0 else None,
        pids_limit=pids,
    )
