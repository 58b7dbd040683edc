"""Eviction ranking, admission under pressure, OOM-kill detection, allocatable and resource fit."""

from __future__ import annotations

from typing import Any

from kube.facts import MachineFacts
from kubelet.eviction import ranking
from kubelet.eviction.admit import admit_under_pressure
from kubelet.eviction.oom import new_oom_kills
from kubelet.eviction.ranking import PodUsage
from kubelet.node.allocatable import (
    Reservations,
    allocatable_amounts,
    kubepods_size,
    node_allocatable,
    threshold_bytes,
)
from kubelet.pods.admission import NodeResources, check_resources
from kubelet.pods.model import ContainerID, ContainerState, RuntimeContainer

MI = 1 << 20


def _pod(name: str, memory: str | None = None, priority: int = 0, **spec: Any) -> dict[str, Any]:
    res = {"requests": {"memory": memory}} if memory else {}
    return {
        "metadata": {"name": name, "uid": name},
        "spec": {"containers": [{"name": "c", "resources": res}], "priority": priority, **spec},
    }


def test_memory_ranking_usage_over_request_then_priority_then_excess() -> None:
    usage = {"be": 5 * MI, "bu-under": 10 * MI, "bu-over": 80 * MI, "be-high": 50 * MI}
    pods = [
        _pod("bu-under", "64Mi"),
        _pod("be-high", priority=1000),
        _pod("bu-over", "64Mi"),
        _pod("be"),
    ]
    ranked = ranking.rank_memory(pods, lambda p: PodUsage(memory=usage[p["metadata"]["name"]]))
    assert [p["metadata"]["name"] for p in ranked] == ["bu-over", "be", "be-high", "bu-under"]


def test_pods_without_stats_rank_first() -> None:
    pods = [_pod("a"), _pod("b")]
    ranked = ranking.rank_memory(
        pods, lambda p: PodUsage(memory=None if p["metadata"]["name"] == "b" else 1)
    )
    assert ranked[0]["metadata"]["name"] == "b"


def test_pid_ranking_priority_then_process_count() -> None:
    procs = {"a": 3, "b": 30, "c": 300}
    pods = [_pod("a"), _pod("b"), _pod("c", priority=5)]
    ranked = ranking.rank_pids(pods, lambda p: PodUsage(processes=procs[p["metadata"]["name"]]))
    assert [p["metadata"]["name"] for p in ranked] == ["b", "a", "c"]


def test_disk_ranking_by_usage_over_ephemeral_request() -> None:
    a, b = _pod("a"), _pod("b")
    b["spec"]["containers"][0]["resources"] = {"requests": {"ephemeral-storage": "1Gi"}}
    disk = {"a": 10 * MI, "b": 100 * MI}
    ranked = ranking.rank_disk([b, a], lambda p: PodUsage(disk=disk[p["metadata"]["name"]]))
    assert [p["metadata"]["name"] for p in ranked] == ["a", "b"]


def test_admission_under_pressure() -> None:
    be, bu = _pod("be"), _pod("bu", "1Mi")
    assert admit_under_pressure(be, []) is None
    r = admit_under_pressure(be, ["MemoryPressure"])
    assert r is not None and r.reason == "Evicted"
    assert r.message == "The node had condition: [MemoryPressure]. "
    assert admit_under_pressure(bu, ["MemoryPressure"]) is None
    tolerant = _pod(
        "t",
        tolerations=[{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists"}],
    )
    assert admit_under_pressure(tolerant, ["MemoryPressure"]) is None
    r = admit_under_pressure(bu, ["DiskPressure", "MemoryPressure"])
    assert r is not None and r.message == "The node had condition: [DiskPressure MemoryPressure]. "
    assert admit_under_pressure(_pod("crit", priority=2000001000), ["DiskPressure"]) is None


def test_new_oom_kills_reported_once() -> None:
    def c(cid: str, reason: str, state: ContainerState = ContainerState.EXITED) -> RuntimeContainer:
        return RuntimeContainer(ContainerID(cid), "hog", state, exit_code=137, reason=reason)

    seen: set[str] = set()
    found = new_oom_kills(
        [c("1", "OOMKilled"), c("2", "Error"), c("3", "", ContainerState.RUNNING)], seen
    )
    assert [x.id for x in found] == ["1"]
    assert new_oom_kills([c("1", "OOMKilled")], seen) == []


FACTS = MachineFacts(
    machine_id="m",
    system_uuid="s",
    boot_id="b",
    kernel_version="6",
    os_image="d",
    architecture="amd64",
    cpus=2,
    memory_bytes=4096 * MI,
    ephemeral_storage_bytes=100 * 1024 * MI,
    hugepages={"2Mi": 64 * MI},
)


def test_allocatable_subtracts_reserved_and_hard_eviction() -> None:
    r = Reservations(
        kube_reserved={"cpu": "100m", "memory": "256Mi"},
        system_reserved={"cpu": "150m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
        eviction_hard={"memory.available": "100Mi", "nodefs.available": "10%"},
    )
    alloc = node_allocatable(FACTS, 110, r)
    assert alloc["cpu"] == "1750m"
    assert alloc["memory"] == f"{(4096 - 64 - 512 - 100) * 1024}Ki"
    assert alloc["ephemeral-storage"] == str(100 * 1024 * MI - 1024 * MI - 10 * 1024 * MI)
    assert alloc["pods"] == "110"
    amounts = allocatable_amounts(FACTS, 110, r)
    assert (amounts.millicpu, amounts.memory, amounts.pods) == (1750, (4096 - 64 - 612) * MI, 110)
    assert kubepods_size(FACTS, r, enforce=True) == (1750, (4096 - 512) * MI)
    assert kubepods_size(FACTS, r, enforce=False) == (2000, 4096 * MI)
    assert threshold_bytes("5%", 200) == 10
    assert threshold_bytes("bogus", 200) == 0


def test_resource_fit_with_upstream_reasons() -> None:
    node = NodeResources(millicpu=2000, memory=1024 * MI, pods=3)

    def pod(cpu: str, memory: str = "1Mi") -> dict[str, Any]:
        res = {"requests": {"cpu": cpu, "memory": memory}}
        return {"spec": {"containers": [{"name": "c", "resources": res}]}}

    others = [pod("1500m"), pod("100m")]
    assert check_resources(pod("400m"), others, node) is None
    r = check_resources(pod("500m"), others, node)
    assert r is not None and r.reason == "OutOfcpu"
    assert r.message == (
        "Node didn't have enough resource: cpu, requested: 500, used: 1600, capacity: 2000"
    )
    r = check_resources(pod("1m", "1023Mi"), others, node)
    assert r is not None and r.reason == "OutOfmemory"
    assert r.message.endswith(f"requested: {1023 * MI}, used: {2 * MI}, capacity: {1024 * MI}")
    r = check_resources(pod("1m"), [*others, pod("1m")], node)
    assert r is not None and r.reason == "OutOfpods"
    assert r.message == "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"
    assert check_resources({"spec": {"containers": [{"name": "c"}]}}, others, node) is None
