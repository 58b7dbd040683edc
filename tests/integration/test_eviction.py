"""Node-pressure eviction for real: thresholds above what is free make the node report
MemoryPressure / DiskPressure / PIDPressure, evict pods in upstream's order with reason Evicted
(disk: after garbage-collecting an unused image), refuse new pods, and recover once the
threshold is lowered.

Thresholds are changed the way an operator does it: the agent is restarted with another
KubeletConfiguration (running pods are adopted, not admitted again).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import images, process
from cluster import up as cluster
from cluster.spec import DEFAULT_CACHE, ClusterSpec
from cri.client import RuntimeClient

from .conftest import NODE
from .podutil import (
    Json,
    api_json,
    container,
    create_pod,
    events,
    get_pod,
    new_namespace,
    pod_body,
    wait_for,
    wait_pod,
)

BASE = "evictionPressureTransitionPeriod: 2s\nimageMinimumGCAge: 1ms"
GC_IMAGE = f"docker.io/library/pykt-gc-{os.getpid()}:1"


def _start(spec: ClusterSpec, extra: str = "") -> None:
    process.stop(cluster.agent_daemon(spec, NODE))
    cluster.start_node(spec, NODE, extra=f"{BASE}\n{extra}")


def _condition(spec: ClusterSpec, ctype: str) -> Json:
    node = api_json(spec, f"/api/v1/nodes/{NODE}")
    for c in node.get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            result: Json = c
            return result
    return {}


def _node_events(spec: ClusterSpec, reason: str) -> list[Json]:
    """Events recorded against the Node (as upstream: default namespace, uid = node name)."""
    selector = f"involvedObject.kind=Node,involvedObject.name={NODE},reason={reason}"
    items: list[Json] = api_json(
        spec, f"/api/v1/namespaces/default/events?fieldSelector={selector}"
    )["items"]
    return items


def _phase(spec: ClusterSpec, ns: str, name: str) -> str:
    return str(((get_pod(spec, ns, name) or {}).get("status") or {}).get("phase", ""))


@pytest.fixture(scope="module")
def eviction_ns(cluster_spec: ClusterSpec) -> Iterator[str]:
    _start(cluster_spec)
    ns = new_namespace(cluster_spec)
    try:
        yield ns
    finally:
        cluster.api(
            cluster_spec, f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0", method="DELETE"
        )
        wait_for(
            lambda: not api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods")["items"], 60, "gone"
        )
        process.stop(cluster.agent_daemon(cluster_spec, NODE))
        # image GC must not have taken what later test modules need
        images.import_images(
            address=cluster_spec.containerd_socket,
            archives=images.build_images(DEFAULT_CACHE / "images"),
        )


def _pods(spec: ClusterSpec, ns: str, prefix: str) -> None:
    create_pod(spec, ns, pod_body(f"{prefix}-be", [container("c", "sleep 3600")], grace=1))
    bu = container("c", "sleep 3600")
    bu["resources"] = {"requests": {"memory": "64Mi", "cpu": "10m"}}
    create_pod(spec, ns, pod_body(f"{prefix}-bu", [bu], grace=1))
    for name in (f"{prefix}-be", f"{prefix}-bu"):
        wait_pod(spec, ns, name, lambda p: p["status"].get("phase") == "Running", 60, "Running")


def _evicted_first(spec: ClusterSpec, ns: str, prefix: str, resource: str) -> Json:
    """The BestEffort pod is evicted while the Burstable one still runs."""

    def be_failed() -> Json | None:
        pod = get_pod(spec, ns, f"{prefix}-be")
        return pod if pod and pod["status"].get("phase") == "Failed" else None

    pod: Json = wait_for(be_failed, 60, "BestEffort pod evicted")
    assert _phase(spec, ns, f"{prefix}-bu") == "Running"
    assert pod["status"]["reason"] == "Evicted"
    msg = pod["status"]["message"]
    assert msg.startswith(f"The node was low on resource: {resource}. Threshold quantity: "), msg
    assert all("terminated" in s["state"] for s in pod["status"]["containerStatuses"]), pod[
        "status"
    ]["containerStatuses"]
    target = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert target and target[0]["reason"] == "TerminationByKubelet", pod["status"]["conditions"]
    evs = events(spec, ns, f"{prefix}-be")
    assert any(e["reason"] == "Evicted" and e["type"] == "Warning" for e in evs), evs
    return pod


def test_memory_pressure_evicts_best_effort_first_and_recovers(
    cluster_spec: ClusterSpec, eviction_ns: str
) -> None:
    ns = eviction_ns
    _pods(cluster_spec, ns, "mem")
    _start(cluster_spec, 'evictionHard: {memory.available: "100Ti"}')
    cond = wait_for(
        lambda: (c := _condition(cluster_spec, "MemoryPressure")).get("status") == "True" and c,
        30,
        "MemoryPressure",
    )
    assert cond["reason"] == "KubeletHasInsufficientMemory"
    pressed = wait_for(
        lambda: _node_events(cluster_spec, "NodeHasInsufficientMemory"), 15, "node event"
    )
    assert pressed[0]["type"] == "Normal", pressed
    assert pressed[0]["message"] == f"Node {NODE} status is now: NodeHasInsufficientMemory"
    assert pressed[0]["involvedObject"]["uid"] == NODE
    _evicted_first(cluster_spec, ns, "mem", "memory")
    # a new BestEffort pod is refused while the node is under memory pressure
    create_pod(cluster_spec, ns, pod_body("mem-late", [container("c", "sleep 3600")]))
    late = wait_pod(
        cluster_spec, ns, "mem-late", lambda p: p["status"].get("phase") == "Failed", 30, "refused"
    )
    assert late["status"]["reason"] == "Evicted"
    assert (
        late["status"]["message"] == "Pod was rejected: The node had condition: [MemoryPressure]. "
    )
    # lower the threshold: the pressure goes, pods run again, the evicted pod stays Failed
    _start(cluster_spec)
    wait_for(
        lambda: _condition(cluster_spec, "MemoryPressure").get("status") == "False",
        30,
        "MemoryPressure gone",
    )
    assert _condition(cluster_spec, "MemoryPressure")["reason"] == "KubeletHasSufficientMemory"
    relieved = wait_for(
        lambda: [
            e
            for e in _node_events(cluster_spec, "NodeHasSufficientMemory")
            if e["lastTimestamp"] >= cond["lastTransitionTime"]
        ],
        15,
        "NodeHasSufficientMemory after the pressure",
    )
    assert relieved[0]["type"] == "Normal", relieved
    create_pod(cluster_spec, ns, pod_body("mem-after", [container("c", "sleep 3600")], grace=1))
    wait_pod(
        cluster_spec,
        ns,
        "mem-after",
        lambda p: p["status"].get("phase") == "Running",
        60,
        "Running",
    )
    assert _phase(cluster_spec, ns, "mem-be") == "Failed"


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _build_unused_image(spec: ClusterSpec) -> None:
    marker = str(os.getpid())
    recipe = images.Recipe(
        name=GC_IMAGE,
        inputs={"marker": marker},
        populate=lambda rootfs, _: _write(rootfs / "gc-marker", marker),
        config_args=("--config.cmd", "/gc-marker"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gc.tar"
        work = Path(tmp) / "work"
        work.mkdir()
        images._build(recipe, out, work)
        subprocess.run(
            [
                "ctr",
                "--address",
                str(spec.containerd_socket),
                "-n",
                "k8s.io",
                "images",
                "import",
                str(out),
            ],
            check=True,
            capture_output=True,
        )


def _has_image(spec: ClusterSpec, name: str) -> bool:
    async def go() -> bool:
        async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
            return (await rt.image_status(name)).HasField("image")

    return asyncio.run(go())


def test_disk_pressure_collects_unused_images_then_evicts(
    cluster_spec: ClusterSpec, eviction_ns: str
) -> None:
    ns = eviction_ns
    _build_unused_image(cluster_spec)
    assert _has_image(cluster_spec, GC_IMAGE)
    _pods(cluster_spec, ns, "disk")
    st = os.statvfs(cluster_spec.directory)
    above = (st.f_bavail * st.f_frsize) // (1 << 30) + 50
    _start(cluster_spec, f'evictionHard: {{nodefs.available: "{above}Gi"}}')
    cond = wait_for(
        lambda: (c := _condition(cluster_spec, "DiskPressure")).get("status") == "True" and c,
        30,
        "DiskPressure",
    )
    assert cond["reason"] == "KubeletHasDiskPressure"
    wait_for(lambda: _node_events(cluster_spec, "NodeHasDiskPressure"), 15, "node event")
    _evicted_first(cluster_spec, ns, "disk", "ephemeral-storage")
    assert not _has_image(cluster_spec, GC_IMAGE), cluster.agent_daemon(cluster_spec, NODE).tail()
    assert _has_image(cluster_spec, images.BUSYBOX_IMAGE), "an image in use was collected"
    assert _has_image(cluster_spec, images.PAUSE_IMAGE), "the sandbox image was collected"
    # the next round evicts the Burstable pod; dead-container GC ran again meanwhile, and the
    # first evicted pod's final status stayed as written
    wait_for(lambda: _phase(cluster_spec, ns, "disk-bu") == "Failed", 30, "Burstable evicted next")
    be = get_pod(cluster_spec, ns, "disk-be") or {}
    assert be["status"]["phase"] == "Failed" and be["status"]["reason"] == "Evicted"
    assert all("terminated" in c["state"] for c in be["status"]["containerStatuses"]), be["status"]
    _start(cluster_spec)
    wait_for(
        lambda: _condition(cluster_spec, "DiskPressure").get("status") == "False",
        30,
        "DiskPressure gone",
    )


def test_pid_pressure_evicts_the_pod_with_most_processes(
    cluster_spec: ClusterSpec, eviction_ns: str
) -> None:
    ns = eviction_ns
    _start(cluster_spec)
    many = container("c", "sleep 3600 & sleep 3600 & sleep 3600 & wait")
    create_pod(cluster_spec, ns, pod_body("pid-many", [many], grace=1))
    create_pod(cluster_spec, ns, pod_body("pid-few", [container("c", "sleep 3600")], grace=1))
    for name in ("pid-many", "pid-few"):
        wait_pod(
            cluster_spec, ns, name, lambda p: p["status"].get("phase") == "Running", 60, "Running"
        )
    limit = min(
        int(Path("/proc/sys/kernel/pid_max").read_text()),
        int(Path("/proc/sys/kernel/threads-max").read_text()),
    )
    _start(cluster_spec, f'evictionHard: {{pid.available: "{limit}"}}')
    cond = wait_for(
        lambda: (c := _condition(cluster_spec, "PIDPressure")).get("status") == "True" and c,
        30,
        "PIDPressure",
    )
    assert cond["reason"] == "KubeletHasInsufficientPID"
    wait_for(lambda: _node_events(cluster_spec, "NodeHasInsufficientPID"), 15, "node event")
    pod = wait_pod(
        cluster_spec, ns, "pid-many", lambda p: p["status"].get("phase") == "Failed", 60, "evicted"
    )
    assert _phase(cluster_spec, ns, "pid-few") == "Running"
    assert pod["status"]["reason"] == "Evicted"
    assert pod["status"]["message"].startswith(
        f"The node was low on resource: pids. Threshold quantity: {limit}, available: "
    )
    _start(cluster_spec)
    wait_for(
        lambda: _condition(cluster_spec, "PIDPressure").get("status") == "False",
        30,
        "PIDPressure gone",
    )


def _seconds(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_soft_allocatable_memory_eviction_uses_the_capped_grace_period(
    cluster_spec: ClusterSpec, eviction_ns: str
) -> None:
    """A soft allocatableMemory.available threshold (the kubepods cgroup's working set against
    what it was given) held past its grace period evicts a pod that ignores SIGTERM; it is
    killed after evictionMaxPodGracePeriod (4 s), not its own 30 s."""
    ns = eviction_ns
    cluster.api(cluster_spec, f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0", method="DELETE")
    wait_for(
        lambda: not api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods")["items"], 60, "gone"
    )
    _start(cluster_spec)
    stubborn = container("c", "trap '' TERM; while true; do sleep 1; done")
    create_pod(cluster_spec, ns, pod_body("soft", [stubborn], grace=30))
    wait_pod(
        cluster_spec, ns, "soft", lambda p: p["status"].get("phase") == "Running", 60, "Running"
    )
    _start(
        cluster_spec,
        'evictionSoft: {allocatableMemory.available: "100Ti"}\n'
        "evictionSoftGracePeriod: {allocatableMemory.available: 1s}\n"
        "evictionMaxPodGracePeriod: 4",
    )
    pod = wait_pod(
        cluster_spec, ns, "soft", lambda p: p["status"].get("phase") == "Failed", 60, "evicted"
    )
    assert pod["status"]["reason"] == "Evicted"
    assert pod["status"]["message"].startswith(
        "The node was low on resource: memory. Threshold quantity: 100Ti, available: "
    ), pod["status"]["message"]
    assert _condition(cluster_spec, "MemoryPressure")["status"] == "True"
    evicted = [e for e in events(cluster_spec, ns, "soft") if e["reason"] == "Evicted"]
    finished = pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    took = _seconds(finished) - _seconds(evicted[0]["firstTimestamp"])
    assert 3 <= took <= 10, (took, evicted[0]["firstTimestamp"], finished)
    _start(cluster_spec)
    wait_for(
        lambda: _condition(cluster_spec, "MemoryPressure").get("status") == "False",
        30,
        "MemoryPressure gone",
    )
