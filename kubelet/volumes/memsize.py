"""The size of a memory-backed emptyDir's tmpfs, as upstream's calculateEmptyDirMemorySize: node
allocatable memory, lowered to the pod's memory limit, lowered to the volume's sizeLimit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubelet.quantity import QuantityError, parse_memory

Json = Mapping[str, Any]


def _containers(spec: Json, key: str) -> list[Json]:
    items = spec.get(key)
    return [c for c in items if isinstance(c, Mapping)] if isinstance(items, list) else []


def _memory_limit(c: Json) -> int:
    resources = c.get("resources")
    limits = resources.get("limits") if isinstance(resources, Mapping) else None
    if not isinstance(limits, Mapping) or "memory" not in limits:
        return 0
    try:
        return parse_memory(limits["memory"])
    except QuantityError:
        return 0


def pod_memory_limit(pod: Json) -> int | None:
    """The pod cgroup's memory limit (ResourceConfigForPod): set only when every container,
    init containers included, declares a memory limit; then upstream's PodLimits (regular
    containers and sidecars summed, or the largest init container with the sidecars started
    before it, whichever is more) plus the pod overhead. None: no pod memory limit."""
    spec = pod.get("spec") or {}
    inits, regular = _containers(spec, "initContainers"), _containers(spec, "containers")
    limits = [_memory_limit(c) for c in (*inits, *regular)]
    if not limits or min(limits) <= 0:
        return None
    sidecars = peak = 0
    for c in inits:
        if c.get("restartPolicy") == "Always":
            sidecars += _memory_limit(c)
            peak = max(peak, sidecars)
        else:
            peak = max(peak, _memory_limit(c) + sidecars)
    total = sum(_memory_limit(c) for c in regular) + sidecars
    overhead = _memory_limit({"resources": {"limits": spec.get("overhead") or {}}})
    return max(total, peak) + overhead


def empty_dir_memory_size(pod: Json, volume: Json, node_allocatable: int | None) -> int | None:
    """Bytes for the tmpfs `size=` option; None leaves the kernel's default (half the RAM),
    only when the node's allocatable memory is unknown. Raises QuantityError for a bad
    sizeLimit. Each lower bound applies only when 0 < bound <= the size so far."""
    size = node_allocatable if node_allocatable and node_allocatable > 0 else None
    for bound in (pod_memory_limit(pod), _size_limit(volume)):
        if bound is not None and bound > 0 and (size is None or bound <= size):
            size = bound
    return size


def _size_limit(volume: Json) -> int | None:
    limit = (volume.get("emptyDir") or {}).get("sizeLimit")
    return None if limit is None else parse_memory(limit)
