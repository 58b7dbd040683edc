"""Pod workers on the fake CRI runtime, with the real executor, runtime cache and status manager:
a pod runs and its status says so; deletion, a vanished object and eviction tear it down; a
finished pod's volumes are released; a torn-down UID never runs again; the newest spec wins.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from cri.client import RuntimeClient
from cri.fake import FakeRuntime, FakeRuntimeServer
from kube.apiserver import Preconditions
from kubelet.pods.backoff import BackOff
from kubelet.pods.executor import PodExecutor
from kubelet.pods.model import PodSpecError, PodUID
from kubelet.pods.status_manager import StatusManager
from kubelet.pods.workers import PodWorkers, _Worker
from kubelet.runtime.state import RuntimeCache
from tests.unit.kubelet.pods.fakes import Recorder, Volumes

IMAGE = "docker.io/library/busybox:1.35"
UID = PodUID("u-work")
POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "default", "uid": UID},
    "spec": {
        "containers": [{"name": "app", "image": IMAGE}],
        "terminationGracePeriodSeconds": 3,
    },
}


@dataclass
class Client:
    """The two apiserver calls the workers make: status patches and the final delete."""

    patches: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def patch(self, resource: Any, name: str, patch: Any, **kw: Any) -> None:
        self.patches.append(patch)

    async def delete(
        self,
        resource: Any,
        name: str,
        *,
        namespace: str,
        grace_period_seconds: int,
        preconditions: Preconditions,
    ) -> None:
        self.deleted.append((namespace, name, preconditions.uid))


@dataclass
class Node:
    fake: FakeRuntime
    workers: PodWorkers
    status: StatusManager
    client: Client
    recorder: Recorder
    volumes: Volumes
    pods_dir: Path

    def phase(self) -> str | None:
        status = self.status.get(UID) or {}
        return status.get("phase")

    def running(self) -> list[str]:
        return sorted(
            c.status.metadata.name
            for c in self.fake.containers.values()
            if c.status.state == 1  # CONTAINER_RUNNING
        )


async def until(cond: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll the condition (the workers run as tasks on this loop) until it holds."""
    for _ in range(int(seconds / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not met within {seconds} s")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with FakeRuntimeServer() as server, RuntimeClient(server.endpoint) as rt:
        server.runtime.add_image(IMAGE)
        recorder, volumes, client = Recorder(), Volumes(), Client()
        workers: PodWorkers | None = None

        def wake(uid: PodUID) -> None:
            if workers is not None:
                workers.wake(uid)

        executor = PodExecutor(
            rt,
            cast(Any, recorder),
            log_root=str(tmp_path / "logs"),
            pods_dir=tmp_path / "pods",
            backoff=BackOff(),
            volumes=volumes,
            memory_capacity=1 << 30,
        )
        status = StatusManager(cast(Any, client))
        workers = PodWorkers(
            client=cast(Any, client),
            cache=RuntimeCache(rt, on_change=wake),
            executor=executor,
            events=executor,
            images=executor,
            volumes=volumes,
            teardown=executor,
            status=status,
            backoff=BackOff(),
            host_ips=lambda: ("192.0.2.1",),
            resync=0.2,
        )
        node = Node(server.runtime, workers, status, client, recorder, volumes, tmp_path / "pods")
        try:
            yield node
        finally:
            for w in list(workers._workers.values()):
                if w.task is not None:
                    w.task.cancel()
            await asyncio.sleep(0)


def _pod(**meta: Any) -> dict[str, Any]:
    out = copy.deepcopy(POD)
    out["metadata"].update(meta)
    return out


async def test_a_new_pod_runs_and_its_status_says_so(node: Node) -> None:
    node.workers.update(_pod())
    await until(lambda: node.phase() == "Running")
    assert node.running() == ["app"]
    status = node.status.get(UID) or {}
    assert status["qosClass"] == "BestEffort"
    assert status["podIP"].startswith("10.88.")
    assert node.recorder.reasons() == ["Pulled", "Created", "Started"]
    assert node.workers.known() == {UID}
    assert [p["metadata"]["uid"] for p in node.workers.active_pods()] == [UID]
    assert node.workers.could_have_running_containers(UID)


async def test_deletion_tears_the_pod_down_and_deletes_the_object(node: Node) -> None:
    node.workers.update(_pod())
    await until(lambda: node.running() == ["app"])
    node.workers.update(_pod(deletionTimestamp="2026-01-01T00:00:00Z"))
    await until(lambda: not node.workers.known())
    assert node.running() == []
    assert node.client.deleted == [("default", "web", UID)]
    assert node.volumes.torn_down == [UID]
    assert not (node.pods_dir / UID).exists()
    assert node.fake.sandboxes == {}
    assert not node.workers.could_have_running_containers(UID)


async def test_a_torn_down_uid_never_runs_again(node: Node) -> None:
    node.workers.update(_pod())
    await until(lambda: node.running() == ["app"])
    node.workers.remove(UID)  # the object vanished: no grace, no delete call
    await until(lambda: not node.workers.known())
    assert node.client.deleted == []
    node.workers.update(_pod())
    await asyncio.sleep(0.3)
    assert node.workers.known() == set() and node.running() == []


async def test_eviction_fails_the_pod_and_keeps_the_object(node: Node) -> None:
    node.workers.update(_pod())
    await until(lambda: node.running() == ["app"])
    node.workers.evict(UID, "The node was low on resource: memory.")
    await until(lambda: node.phase() == "Failed")
    status = node.status.get(UID) or {}
    assert (status["reason"], status["message"]) == (
        "Evicted",
        "The node was low on resource: memory.",
    )
    await until(lambda: node.running() == [])
    assert node.client.deleted == [] and node.workers.known() == {UID}
    assert not node.workers.keeps_content(UID)
    await asyncio.sleep(0.3)  # a resync later, nothing came back
    assert node.running() == [] and node.workers.active_pods() == []


async def test_a_finished_pod_releases_its_volumes_before_deletion(node: Node) -> None:
    pod = _pod()
    pod["spec"]["restartPolicy"] = "Never"
    node.workers.update(pod)
    await until(lambda: node.running() == ["app"])
    (cid,) = node.fake.containers
    node.fake.exit_container(cid, exit_code=0)
    node.workers.wake(UID)
    await until(lambda: node.phase() == "Succeeded")
    await until(lambda: node.volumes.torn_down == [UID])
    assert node.workers.known() == {UID} and node.client.deleted == []


async def test_the_newest_spec_wins(node: Node) -> None:
    node.workers.update(_pod())
    await until(lambda: node.running() == ["app"])
    changed = _pod()
    changed["spec"]["containers"][0]["command"] = ["sleep", "1000"]
    node.workers.update(changed)
    await until(lambda: len(node.fake.containers) == 2 and node.running() == ["app"])
    newest = max(node.fake.containers.values(), key=lambda c: c.status.created_at)
    assert list(newest.config.command) == ["sleep", "1000"]
    assert "Killing" in node.recorder.reasons()


def test_a_pod_is_decoded_once_per_object_received() -> None:
    w = _Worker(_pod())
    first = w.spec()
    assert w.spec() is first
    w.pod = _pod(labels={"v": "2"})
    assert w.spec() is not first and w.spec().labels == {"v": "2"}
    w.pod = _pod(name=5)
    with pytest.raises(PodSpecError, match=r"metadata\.name"):
        w.spec()


async def test_an_undecodable_pod_never_runs(node: Node) -> None:
    bad = _pod()
    bad["spec"]["containers"][0]["image"] = ""
    node.workers.update(bad)
    await asyncio.sleep(0.3)
    assert node.fake.sandboxes == {} and node.status.get(UID) is None
