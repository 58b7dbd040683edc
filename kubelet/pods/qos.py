"""The pod's QoS class (upstream's ComputePodQOS), on the typed model: the one place it is
computed, for status, oom_score_adj, cgroups and admission alike. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from fractions import Fraction

from kube.jsontypes import JsonMap
from kube.quantity import parse_quantity
from kubelet.pods.model import Pod

QOS_RESOURCES = ("cpu", "memory")
"""Only these count (upstream's isSupportedQoSComputeResource)."""


class QOSClass(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


def _positive(values: object) -> dict[str, Fraction]:
    """The cpu and memory amounts above zero in one requests or limits map."""
    if not isinstance(values, Mapping):
        return {}
    out = {}
    for name in QOS_RESOURCES:
        try:
            amount = parse_quantity(values[name]) if name in values else Fraction(0)
        except ValueError:
            continue  # only a pod not decoded yet has one (qos_class_of); it never counts
        if amount > 0:
            out[name] = amount
    return out


def _add(into: dict[str, Fraction], values: Mapping[str, Fraction]) -> None:
    for name, amount in values.items():
        into[name] = into.get(name, Fraction(0)) + amount


def _sums(
    resources: Iterable[JsonMap],
) -> tuple[dict[str, Fraction], dict[str, Fraction], bool]:
    """Summed requests and limits over these resource requirements, and whether each one has
    both cpu and memory limits. Requests default to limits, as the apiserver defaults them."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    all_limited = True
    for res in resources:
        own_limits = _positive(res.get("limits"))
        _add(requests, _positive({**_mapping(res.get("limits")), **_mapping(res.get("requests"))}))
        _add(limits, own_limits)
        all_limited = all_limited and own_limits.keys() >= set(QOS_RESOURCES)
    return requests, limits, all_limited


def qos_class(pod: Pod) -> QOSClass:
    """BestEffort: no cpu or memory request or limit anywhere. Guaranteed: every container (init
    ones included) limits cpu and memory, and the summed requests equal the summed limits.
    Otherwise Burstable. Zero amounts are ignored. Pod-level resources (spec.resources), when
    set, decide alone. Ephemeral containers never count."""
    containers = (*pod.containers, *pod.init_containers)
    return _classify(pod.resources, [c.resources for c in containers])


def _classify(pod_level: JsonMap, containers: list[JsonMap]) -> QOSClass:
    if pod_level:
        requests, limits, all_limited = _sums((pod_level,))
    else:
        requests, limits, all_limited = _sums(containers)
    if not requests and not limits:
        return QOSClass.BEST_EFFORT
    if all_limited and requests == limits:
        return QOSClass.GUARANTEED
    return QOSClass.BURSTABLE


def _mapping(value: object) -> JsonMap:
    return value if isinstance(value, Mapping) else {}


def qos_class_of(pod: JsonMap) -> QOSClass:
    """qos_class of a pod still held as apiserver JSON, by the same rules; reads only the
    resources (a malformed rest of the pod is the decoder's to refuse, not this)."""
    spec = _mapping(pod.get("spec"))
    listed = [spec.get(key) for key in ("containers", "initContainers")]
    containers = [
        _mapping(_mapping(c).get("resources")) for cs in listed if isinstance(cs, list) for c in cs
    ]
    return _classify(_mapping(spec.get("resources")), containers)
