"""The order pods are evicted in, as upstream ranks them, pure: memory and disk by whether usage
exceeds requests, then priority (lowest first), then usage above requests; PIDs by priority, then
process count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cmp_to_key

from kube.jsontypes import JsonMap
from kube.quantity import QuantityError, parse_memory
from kubelet.cgroups.planner import pod_requests


@dataclass(frozen=True)
class PodUsage:
    """What a pod uses now; None for what could not be measured."""

    memory: int | None = None
    disk: int | None = None
    processes: int | None = None


Stats = Callable[[JsonMap], PodUsage]
Cmp = Callable[[JsonMap, JsonMap], int]


def priority(pod: JsonMap) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return value if isinstance(value, int) else 0


def _storage_request(pod: JsonMap) -> int:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        requests = ((c.get("resources") or {}).get("requests")) or {}
        try:
            total += parse_memory(requests.get("ephemeral-storage") or 0)
        except QuantityError:
            continue
    return total


def _cmp(a: int, b: int) -> int:
    return (a > b) - (a < b)


def _exceeds(usage: Callable[[JsonMap], int | None], request: Callable[[JsonMap], int]) -> Cmp:
    """Pods without stats first, then pods whose usage exceeds their request."""

    def cmp(p1: JsonMap, p2: JsonMap) -> int:
        u1, u2 = usage(p1), usage(p2)
        if u1 is None or u2 is None:
            return _cmp(u1 is not None, u2 is not None)
        return _cmp(u2 > request(p2), u1 > request(p1))

    return cmp


def _above_request(
    usage: Callable[[JsonMap], int | None], request: Callable[[JsonMap], int]
) -> Cmp:
    """More usage above the request first."""

    def cmp(p1: JsonMap, p2: JsonMap) -> int:
        return _cmp((usage(p2) or 0) - request(p2), (usage(p1) or 0) - request(p1))

    return cmp


def _by_priority(p1: JsonMap, p2: JsonMap) -> int:
    return _cmp(priority(p1), priority(p2))


def _ordered(pods: Sequence[JsonMap], cmps: Sequence[Cmp]) -> list[JsonMap]:
    def combined(p1: JsonMap, p2: JsonMap) -> int:
        for cmp in cmps:
            result = cmp(p1, p2)
            if result:
                return result
        return 0

    return sorted(pods, key=cmp_to_key(combined))


def rank_memory(pods: Sequence[JsonMap], stats: Stats) -> list[JsonMap]:
    def usage(p: JsonMap) -> int | None:
        return stats(p).memory

    def request(p: JsonMap) -> int:
        return pod_requests(p)["memory"]

    return _ordered(pods, [_exceeds(usage, request), _by_priority, _above_request(usage, request)])


def rank_disk(pods: Sequence[JsonMap], stats: Stats) -> list[JsonMap]:
    def usage(p: JsonMap) -> int | None:
        return stats(p).disk

    return _ordered(
        pods,
        [_exceeds(usage, _storage_request), _by_priority, _above_request(usage, _storage_request)],
    )


def rank_pids(pods: Sequence[JsonMap], stats: Stats) -> list[JsonMap]:
    def by_processes(p1: JsonMap, p2: JsonMap) -> int:
        return _cmp(stats(p2).processes or 0, stats(p1).processes or 0)

    return _ordered(pods, [_by_priority, by_processes])


RANKERS: dict[str, Callable[[Sequence[JsonMap], Stats], list[JsonMap]]] = {
    "memory": rank_memory,
    "ephemeral-storage": rank_disk,
    "inodes": rank_disk,
    "pids": rank_pids,
}
