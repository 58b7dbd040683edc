"""Admission under node pressure as upstream's eviction manager does it, pure: with memory
pressure only BestEffort pods are refused (unless they tolerate the taint); with any other
pressure every pod is, except critical ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kube.jsontypes import JsonMap
from kubelet.pods.admission import Rejection
from kubelet.pods.qos import QOSClass, qos_class_of

EVICTED = "Evicted"
MEMORY_PRESSURE_TAINT = "node.kubernetes.io/memory-pressure"
SYSTEM_CRITICAL_PRIORITY = 2000000000


def _critical(pod: JsonMap) -> bool:
    priority = (pod.get("spec") or {}).get("priority")
    return isinstance(priority, int) and priority >= SYSTEM_CRITICAL_PRIORITY


def _tolerates_memory_pressure(pod: JsonMap) -> bool:
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if not isinstance(t, Mapping):
            continue
        key_ok = t.get("key") == MEMORY_PRESSURE_TAINT or (
            not t.get("key") and t.get("operator") == "Exists"
        )
        if key_ok and t.get("effect") in (None, "", "NoSchedule"):
            return True
    return False


def admit_under_pressure(pod: JsonMap, conditions: Sequence[str]) -> Rejection | None:
    if not conditions or _critical(pod):
        return None
    only_memory = list(conditions) == ["MemoryPressure"]
    if only_memory and (
        qos_class_of(pod) != QOSClass.BEST_EFFORT or _tolerates_memory_pressure(pod)
    ):
        return None
    return Rejection(EVICTED, f"The node had condition: [{' '.join(conditions)}]. ")
