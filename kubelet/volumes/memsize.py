"""The size of a memory-backed emptyDir's tmpfs, as upstream's calculateEmptyDirMemorySize: node
allocatable memory, lowered to the pod's memory limit, lowered to the volume's sizeLimit.
"""

from __future__ import annotations

from kube.jsontypes import JsonMap
from kube.quantity import parse_memory
from kubelet.cgroups.planner import pod_resources


def pod_memory_limit(pod: JsonMap) -> int | None:
    """The pod cgroup's memory limit as the cgroup planner computes it (ResourceConfigForPod):
    set only when every container, init containers included, declares a memory limit; then
    upstream's PodLimits plus the pod overhead. None: no pod memory limit."""
    return pod_resources(pod).memory_limit


def empty_dir_memory_size(
    pod: JsonMap, volume: JsonMap, node_allocatable: int | None
) -> int | None:
    """Bytes for the tmpfs `size=` option; None leaves the kernel's default (half the RAM),
    only when the node's allocatable memory is unknown. Raises QuantityError for a bad
    sizeLimit. Each lower bound applies only when 0 < bound <= the size so far."""
    size = node_allocatable if node_allocatable and node_allocatable > 0 else None
    for bound in (pod_memory_limit(pod), _size_limit(volume)):
        if bound is not None and bound > 0 and (size is None or bound <= size):
            size = bound
    return size


def _size_limit(volume: JsonMap) -> int | None:
    limit = (volume.get("emptyDir") or {}).get("sizeLimit")
    return None if limit is None else parse_memory(limit)
