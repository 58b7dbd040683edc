"""Node allocatable as upstream computes it, pure: capacity less kubeReserved, systemReserved and
the hard eviction thresholds (for the Node status and admission); the kubepods cgroup's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kube.facts import MachineFacts
from kube.quantity import QuantityError, parse_cpu, parse_memory
from kubelet.node import status as nodestatus

_EVICTION_RESOURCE = {"memory.available": "memory", "nodefs.available": "ephemeral-storage"}


def threshold_bytes(value: str, capacity: int) -> int:
    """A threshold ("100Mi" or "10%") in bytes, percentages taken of `capacity`."""
    text = value.strip()
    if text.endswith("%"):
        try:
            return int(capacity * float(text[:-1]) / 100)
        except ValueError:
            return 0
    try:
        return parse_memory(text)
    except QuantityError:
        return 0


@dataclass(frozen=True)
class Reservations:
    """What the configuration sets aside: kubeReserved, systemReserved, evictionHard."""

    kube_reserved: Mapping[str, str] = field(default_factory=dict)
    system_reserved: Mapping[str, str] = field(default_factory=dict)
    eviction_hard: Mapping[str, str] = field(default_factory=dict)


def _quantity(name: str, value: str) -> int:
    try:
        return parse_cpu(value) if name == "cpu" else parse_memory(value)
    except QuantityError:
        return 0


def reserved(r: Reservations) -> dict[str, int]:
    """kubeReserved + systemReserved per resource (cpu in millicores, the rest in units)."""
    out: dict[str, int] = {}
    for source in (r.kube_reserved, r.system_reserved):
        for name, value in source.items():
            out[name] = out.get(name, 0) + _quantity(name, value)
    return out


def eviction_reserved(r: Reservations, facts: MachineFacts) -> dict[str, int]:
    """The hard eviction thresholds as reservations (memory.available, nodefs.available)."""
    capacity = {"memory": facts.memory_bytes, "ephemeral-storage": facts.ephemeral_storage_bytes}
    out: dict[str, int] = {}
    for signal, resource in _EVICTION_RESOURCE.items():
        if signal in r.eviction_hard:
            out[resource] = threshold_bytes(r.eviction_hard[signal], capacity[resource])
    return out


def node_allocatable(facts: MachineFacts, max_pods: int, r: Reservations) -> dict[str, str]:
    """status.allocatable: capacity - reserved - hard eviction thresholds (never below 0)."""
    res, ev = reserved(r), eviction_reserved(r, facts)
    return nodestatus.allocatable(
        facts,
        max_pods,
        reserved_memory_bytes=res.get("memory", 0) + ev.get("memory", 0),
        reserved_storage_bytes=res.get("ephemeral-storage", 0) + ev.get("ephemeral-storage", 0),
        reserved_millicpu=res.get("cpu", 0),
    )


@dataclass(frozen=True)
class Amounts:
    """Allocatable in numbers, for admission: millicores, bytes, pods."""

    millicpu: int
    memory: int
    pods: int


def allocatable_amounts(facts: MachineFacts, max_pods: int, r: Reservations) -> Amounts:
    res, ev = reserved(r), eviction_reserved(r, facts)
    hugepages = sum(facts.hugepages.values())
    return Amounts(
        millicpu=max(0, facts.cpus * 1000 - res.get("cpu", 0)),
        memory=max(0, facts.memory_bytes - hugepages - res.get("memory", 0) - ev.get("memory", 0)),
        pods=max_pods,
    )


def kubepods_size(facts: MachineFacts, r: Reservations, enforce: bool) -> tuple[int, int]:
    """(millicpu, memory bytes) the kubepods cgroup gets: capacity less kube/system reserved when
    enforceNodeAllocatable has "pods" (eviction thresholds are not taken off), else capacity."""
    res = reserved(r) if enforce else {}
    return (
        max(0, facts.cpus * 1000 - res.get("cpu", 0)),
        max(0, facts.memory_bytes - res.get("memory", 0)),
    )


@dataclass(frozen=True)
class ReservedCgroup:
    """A reservation enforceNodeAllocatable puts on its cgroup as limits."""

    option: str
    """system-reserved, kube-reserved (or their -compressible forms)."""
    field: str
    """The configuration field naming the cgroup (systemReservedCgroup, kubeReservedCgroup)."""
    cgroup: str
    reserved: Mapping[str, str]
    compressible_only: bool


def reserved_cgroups(
    enforce: Sequence[str], r: Reservations, *, system_cgroup: str, kube_cgroup: str
) -> list[ReservedCgroup]:
    """The reserved cgroups to enforce, system first then kube as upstream; an empty cgroup
    name is kept (the caller refuses it, naming the field)."""
    out = []
    for option, field_name, cgroup, reserved in (
        ("system-reserved", "systemReservedCgroup", system_cgroup, r.system_reserved),
        ("kube-reserved", "kubeReservedCgroup", kube_cgroup, r.kube_reserved),
    ):
        for name, compressible in ((option, False), (f"{option}-compressible", True)):
            if name in enforce:
                out.append(ReservedCgroup(name, field_name, cgroup, reserved, compressible))
    return out
