"""Dead-container garbage collection as upstream's container GC policy, pure: which exited
containers and dead sandboxes to remove, given what the runtime lists and which pods keep theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cri import api

UID_LABEL = "io.kubernetes.pod.uid"
GC_PERIOD_SECONDS = 60.0
"""Upstream's ContainerGCPeriod."""


@dataclass(frozen=True)
class Policy:
    """Upstream's defaults: no minimum age, one dead container kept per (pod, container name)
    (for `kubectl logs --previous`), no node-wide cap (-1)."""

    min_age_seconds: float = 0.0
    max_per_pod_container: int = 1
    max_containers: int = -1


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Plan:
    containers: tuple[str, ...] = ()
    sandboxes: tuple[str, ...] = ()


def _newest_first(items: list[api.Container]) -> list[api.Container]:
    return sorted(items, key=lambda c: (c.created_at, c.metadata.attempt), reverse=True)


def plan(
    containers: Sequence[api.Container],
    sandboxes: Sequence[api.PodSandbox],
    *,
    keep: Callable[[str], bool],
    sources_ready: bool,
    now_ns: int,
    policy: Policy = DEFAULT_POLICY,
) -> Plan:
    """Exited containers old enough are grouped by (pod UID, container name). Once every pod
    source has been read, every group of a pod whose content is not kept goes; the others keep
    their newest max_per_pod_container (then max_containers node-wide, oldest first). Sandboxes
    not ready and left without containers go when their pod is not kept, or when a newer
    sandbox of the pod exists. Containers without the pod UID label, and sandboxes without a
    pod UID, are not the node agent's: they are left alone."""
    cutoff = now_ns - int(policy.min_age_seconds * 1e9)
    units: dict[tuple[str, str], list[api.Container]] = {}
    for c in containers:
        uid = c.labels.get(UID_LABEL, "")
        if uid and c.state == api.CONTAINER_EXITED and c.created_at <= cutoff:
            units.setdefault((uid, c.metadata.name), []).append(c)
    remove: list[api.Container] = []
    for key in list(units):
        if sources_ready and not keep(key[0]):
            remove.extend(units.pop(key))
    for unit in units.values():
        unit[:] = _newest_first(unit)
        if policy.max_per_pod_container >= 0:
            remove.extend(unit[policy.max_per_pod_container :])
            del unit[policy.max_per_pod_container :]
    total = sum(len(unit) for unit in units.values())
    if policy.max_containers >= 0 and total > policy.max_containers:
        per_unit = max(1, policy.max_containers // len(units))
        for unit in units.values():
            remove.extend(unit[per_unit:])
            del unit[per_unit:]
        left = _newest_first([c for unit in units.values() for c in unit])
        remove.extend(left[policy.max_containers :])
    gone = {c.id for c in remove}
    dead = _dead_sandboxes(containers, gone, sandboxes, keep, sources_ready)
    return Plan(tuple(c.id for c in remove), dead)


def _dead_sandboxes(
    containers: Sequence[api.Container],
    gone: set[str],
    sandboxes: Sequence[api.PodSandbox],
    keep: Callable[[str], bool],
    sources_ready: bool,
) -> tuple[str, ...]:
    holding = {c.pod_sandbox_id for c in containers if c.id not in gone}
    newest: dict[str, int] = {}
    for s in sandboxes:
        newest[s.metadata.uid] = max(newest.get(s.metadata.uid, 0), s.created_at)
    out = []
    for s in sandboxes:
        uid = s.metadata.uid
        if not uid or s.state == api.SANDBOX_READY or s.id in holding:
            continue
        if (sources_ready and not keep(uid)) or s.created_at < newest[uid]:
            out.append(s.id)
    return tuple(out)
