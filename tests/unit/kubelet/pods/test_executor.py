"""The pod executor on the fake CRI runtime: a plan carried out as CRI calls in order (sandbox,
pulls, create, start), kills in stages, the image pull back-off, a failed sandbox, the events
users see, and the teardown of a pod that no longer runs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from cri import api
from cri.client import RuntimeClient
from cri.fake import FakeRuntime, FakeRuntimeServer
from kubelet import events as ev
from kubelet.pods.backoff import BackOff
from kubelet.pods.decode import pod_from_api
from kubelet.pods.executor import (
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACK_OFF,
    PodExecutor,
)
from kubelet.pods.model import Pod, PodUID, RuntimePod
from kubelet.pods.plan import PodActions, compute_pod_actions
from kubelet.runtime.state import RuntimeCache
from tests.unit.kubelet.pods.fakes import Recorder, Volumes

R = TypeVar("R")
UID = PodUID("u-exec")
IMAGE = "docker.io/library/busybox:1.35"
POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "default", "uid": UID},
    "spec": {
        "initContainers": [{"name": "side", "image": IMAGE, "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": IMAGE}, {"name": "log", "image": IMAGE}],
        "terminationGracePeriodSeconds": 5,
    },
}


@dataclass
class Env:
    fake: FakeRuntime
    rt: RuntimeClient
    executor: PodExecutor
    recorder: Recorder
    volumes: Volumes
    cache: RuntimeCache
    pods_dir: Path

    async def plan_and_run(self, pod_json: dict[str, Any], **kw: Any) -> tuple[PodActions, Any]:
        pod = pod_from_api(pod_json)
        runtime = await self.cache.refresh(pod.uid)
        actions = compute_pod_actions(pod, runtime, now=0.0, backoff=BackOff(), **kw)
        return actions, await self.executor.execute(pod_json, pod, actions, runtime)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with FakeRuntimeServer() as server, RuntimeClient(server.endpoint) as rt:
        recorder, volumes = Recorder(), Volumes()
        executor = PodExecutor(
            rt,
            recorder,  # type: ignore[arg-type]
            log_root=str(tmp_path / "logs"),
            pods_dir=tmp_path / "pods",
            backoff=BackOff(),
            volumes=volumes,
            memory_capacity=1 << 30,
        )
        cache = RuntimeCache(rt, on_change=lambda uid: None)
        yield Env(server.runtime, rt, executor, recorder, volumes, cache, tmp_path / "pods")


def sent(fake: FakeRuntime, kind: type[R]) -> list[R]:
    """The requests of one CRI method, typed (the method is the request type's name)."""
    method = kind.__name__.removesuffix("Request")
    return [r for r in fake.requests(method) if isinstance(r, kind)]


def _pod(**spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(POD)
    out["spec"].update(spec)
    return out


async def test_first_sync_runs_the_sandbox_then_sidecar_then_containers(env: Env) -> None:
    env.fake.add_image(IMAGE)
    actions, out = await env.plan_and_run(_pod())
    assert actions.create_sandbox and out.waiting == {} and out.sandbox_error == ""
    assert env.fake.methods()[-1] == "StartContainer"
    created = [r.config.metadata.name for r in sent(env.fake, api.CreateContainerRequest)]
    assert created == ["side"]  # the sidecar first; the others once it has started
    assert env.volumes.set_up == [UID]
    assert env.recorder.reasons() == ["Pulled", "Created", "Started"]
    assert env.recorder.events[1].field_path == "spec.initContainers{side}"
    _, out = await env.plan_and_run(_pod())
    created = [r.config.metadata.name for r in sent(env.fake, api.CreateContainerRequest)]
    assert created == ["side", "app", "log"] and out.waiting == {}
    assert len(env.fake.requests("RunPodSandbox")) == 1


async def test_termination_log_file_is_made_for_each_container(env: Env) -> None:
    env.fake.add_image(IMAGE)
    await env.plan_and_run(_pod(initContainers=[]))
    logs = sorted(p.parent.name for p in env.pods_dir.glob(f"{UID}/containers/*/termination-log-0"))
    assert logs == ["app", "log"]


async def test_missing_image_is_pulled_with_events(env: Env) -> None:
    _, out = await env.plan_and_run(
        _pod(initContainers=[], containers=[POD["spec"]["containers"][0]])
    )
    assert out.waiting == {}
    assert [r.image.image for r in sent(env.fake, api.PullImageRequest)] == [IMAGE]
    assert env.recorder.reasons() == ["Pulling", "Pulled", "Created", "Started"]


async def test_failed_pull_waits_then_backs_off(env: Env) -> None:
    env.fake.fail("PullImage", grpc.StatusCode.NOT_FOUND, "no such image")
    pod_json = _pod(initContainers=[], containers=[POD["spec"]["containers"][0]])
    _, out = await env.plan_and_run(pod_json)
    assert out.waiting["app"].reason == ERR_IMAGE_PULL
    assert "no such image" in out.waiting["app"].message
    assert 0 < env.executor.pull_backoff_left(UID, IMAGE, time.time()) <= 10  # first step: 10 s
    _, again = await env.plan_and_run(pod_json)
    assert again.waiting["app"].reason == IMAGE_PULL_BACK_OFF
    assert len(env.fake.requests("PullImage")) == 1
    assert env.recorder.reasons()[-1] == "BackOff"


async def test_failed_sandbox_is_reported_and_nothing_starts(env: Env) -> None:
    env.fake.fail("RunPodSandbox", grpc.StatusCode.UNKNOWN, "cni failed")
    _, out = await env.plan_and_run(_pod())
    assert "cni failed" in out.sandbox_error
    assert env.fake.requests("CreateContainer") == []
    assert env.recorder.reasons() == [ev.FAILED_CREATE_SANDBOX]


async def test_deletion_kills_regular_containers_then_sidecars_then_the_sandbox(env: Env) -> None:
    env.fake.add_image(IMAGE)
    await env.plan_and_run(_pod())
    await env.plan_and_run(_pod())
    deleted = _pod()
    deleted["metadata"] |= {"deletionTimestamp": "2026-01-01T00:00:00Z"}
    actions, _ = await env.plan_and_run(deleted)
    assert actions.kill_pod
    names = {c.status.id: c.status.metadata.name for c in env.fake.containers.values()}
    stopped = [names[r.container_id] for r in sent(env.fake, api.StopContainerRequest)]
    assert sorted(stopped[:2]) == ["app", "log"] and stopped[2:] == ["side"]
    assert all(r.timeout == 5 for r in sent(env.fake, api.StopContainerRequest))
    assert env.fake.methods()[-1] == "StopPodSandbox"
    assert env.recorder.reasons()[-3:] == ["Killing"] * 3


async def test_remove_pod_removes_sandboxes_then_volumes_then_the_directory(env: Env) -> None:
    env.fake.add_image(IMAGE)
    await env.plan_and_run(_pod(initContainers=[]))
    assert (env.pods_dir / UID).is_dir()
    runtime: RuntimePod = await env.cache.refresh(UID)
    await env.executor.remove_pod(UID, runtime)
    assert len(env.fake.requests("RemovePodSandbox")) == 1
    assert env.volumes.torn_down == [UID]
    assert not (env.pods_dir / UID).exists()


async def test_pod_and_container_events_name_the_pod(env: Env) -> None:
    pod: Pod = pod_from_api(_pod())
    env.executor.pod_event(pod, ev.WARNING, "Rejected", "no")
    env.executor.container_event(pod, "app", ev.NORMAL, "Hi", "there")
    first, second = env.recorder.events
    assert (first.namespace, first.pod, first.uid, first.field_path) == ("default", "web", UID, "")
    assert second.field_path == "spec.containers{app}"
