"""The volume manager against a fake apiserver on a temporary root (disk-backed kinds only,
so no mounts and no root needed)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
from pathlib import Path
from typing import Any

import pytest

from kube.apiserver import NotFound, Resource
from kubelet.pods.seams import VolumeSetupError
from kubelet.volumes import VolumeManager, manager


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.gets = 0

    async def get(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        self.gets += 1
        obj = self.objects.get((resource.plural, name))
        if obj is None:
            raise NotFound(code=404, reason="NotFound", message="not found")
        return copy.deepcopy(obj)

    async def create(
        self,
        resource: Resource,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        raise AssertionError("no tokens in these tests")


def _pod(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": labels or {}},
        "spec": {
            "securityContext": {"fsGroup": os.getgid()},
            "containers": [{"name": "c"}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o600}},
                {"name": "scratch", "emptyDir": {}},
                {
                    "name": "info",
                    "downwardAPI": {
                        "items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]
                    },
                },
            ],
        },
    }


def _vol(root: Path, plugin: str, name: str) -> Path:
    return root / "pods" / "u1" / "volumes" / plugin / name


@pytest.fixture
def no_tmpfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """downwardAPI lives on a tmpfs; here a plain directory stands in for it."""

    def fake_mount(path: Path, size: int | None, mode: int = 0o755) -> bool:
        path.mkdir(parents=True, exist_ok=True)
        return False

    monkeypatch.setattr("kubelet.volumes.hostfs.mount_tmpfs", fake_mount)


async def test_setup_refresh_teardown(tmp_path: Path, no_tmpfs: None) -> None:
    api = FakeApi()
    api.objects[("configmaps", "cfg")] = {"data": {"k": "v1"}}
    vm = VolumeManager(api, tmp_path, allocatable={})
    pod = _pod({"app": "a"})
    await vm.setup(pod)
    cfg = _vol(tmp_path, "kubernetes.io~configmap", "cfg")
    assert (cfg / "k").read_text() == "v1"
    assert (cfg / "k").stat().st_mode & 0o777 == 0o640, "fsGroup adds group read"
    scratch = _vol(tmp_path, "kubernetes.io~empty-dir", "scratch")
    assert scratch.is_dir() and scratch.stat().st_mode & 0o2000
    info = _vol(tmp_path, "kubernetes.io~downward-api", "info")
    assert (info / "l").read_text() == 'app="a"'

    api.objects[("configmaps", "cfg")] = {"data": {"k": "v2"}}
    api.objects[("pods", "web")] = _pod({"app": "b"})
    await vm.refresh_all()
    assert (cfg / "k").read_text() == "v2"
    assert (info / "l").read_text() == 'app="b"'

    await vm.teardown("u1")
    assert not (tmp_path / "pods" / "u1" / "volumes").exists()
    await vm.teardown("u1")
    gets = api.gets
    await vm.refresh_all()
    assert api.gets == gets, "a torn-down pod is not refreshed"


async def test_missing_configmap_is_a_setup_error(tmp_path: Path, no_tmpfs: None) -> None:
    vm = VolumeManager(FakeApi(), tmp_path, allocatable={})
    with pytest.raises(VolumeSetupError, match='volume "cfg" : configmap "cfg" not found'):
        await vm.setup(_pod())


async def test_refresh_keeps_content_when_source_vanishes(tmp_path: Path, no_tmpfs: None) -> None:
    api = FakeApi()
    api.objects[("configmaps", "cfg")] = {"data": {"k": "v1"}}
    vm = VolumeManager(api, tmp_path, allocatable={})
    await vm.setup(_pod())
    del api.objects[("configmaps", "cfg")]
    await vm.refresh_all()
    assert (_vol(tmp_path, "kubernetes.io~configmap", "cfg") / "k").read_text() == "v1"


async def test_host_path_check_names_volume_path_and_type(tmp_path: Path) -> None:
    pod = _pod()
    missing = tmp_path / "nope"
    pod["spec"]["volumes"] = [
        {"name": "h", "hostPath": {"path": str(missing), "type": "Directory"}}
    ]
    vm = VolumeManager(FakeApi(), tmp_path, allocatable={})
    with pytest.raises(VolumeSetupError) as err:
        await vm.setup(pod)
    assert '"h"' in str(err.value) and str(missing) in str(err.value)
    assert "Directory" in str(err.value)


async def test_unsupported_volume_kind(tmp_path: Path) -> None:
    pod = _pod()
    pod["spec"]["volumes"] = [{"name": "p", "persistentVolumeClaim": {"claimName": "c"}}]
    vm = VolumeManager(FakeApi(), tmp_path, allocatable={})
    with pytest.raises(VolumeSetupError, match="not supported"):
        await vm.setup(pod)


async def test_cleanup_orphans(tmp_path: Path) -> None:
    for uid in ("alive", "orphan"):
        (tmp_path / "pods" / uid / "volumes" / "kubernetes.io~empty-dir" / "x").mkdir(parents=True)
    vm = VolumeManager(FakeApi(), tmp_path, allocatable={})
    assert await vm.cleanup_orphans({"alive"}) == ["orphan"]
    assert (tmp_path / "pods" / "alive").is_dir()
    assert not (tmp_path / "pods" / "orphan").exists()


async def test_cleanup_orphans_asks_a_predicate_per_pod(tmp_path: Path) -> None:
    for uid in ("alive", "orphan", "in-runtime"):
        (tmp_path / "pods" / uid / "volumes").mkdir(parents=True)
    asked: list[str] = []

    def active(uid: str) -> bool:
        asked.append(uid)
        return uid != "orphan"

    vm = VolumeManager(FakeApi(), tmp_path, allocatable={})
    assert await vm.cleanup_orphans(active) == ["orphan"]
    assert sorted(asked) == ["alive", "in-runtime", "orphan"]
    assert (tmp_path / "pods" / "in-runtime").is_dir()


async def test_orphan_loop_waits_until_ready(tmp_path: Path) -> None:
    (tmp_path / "pods" / "orphan").mkdir(parents=True)
    gate = asyncio.Event()
    vm = VolumeManager(FakeApi(), tmp_path, allocatable={})

    async def ready() -> None:
        await gate.wait()

    task = asyncio.create_task(vm.orphan_loop(ready, lambda uid: False, every=0.01))
    try:
        await asyncio.sleep(0.05)
        assert (tmp_path / "pods" / "orphan").is_dir()  # pods not known yet: nothing removed
        gate.set()
        for _ in range(100):
            if not (tmp_path / "pods" / "orphan").exists():
                break
            await asyncio.sleep(0.01)
        assert not (tmp_path / "pods" / "orphan").exists()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_allocatable_may_be_read_when_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    seen: list[Any] = []

    def allocatable() -> dict[str, str]:
        calls.append(1)
        return {"cpu": "3", "memory": "1Gi"}

    def fake_setup(root: Path, pod: Any, volume: Any, sources: Any, alloc: Any) -> bool:
        seen.append(alloc)
        return False

    monkeypatch.setattr(manager, "setup_volume", fake_setup)
    vm = VolumeManager(FakeApi(), tmp_path, allocatable=allocatable)
    await vm.setup(_pod())
    assert calls == [1]  # read once per pod sync, not per volume
    assert seen == [{"cpu": "3", "memory": "1Gi"}] * 3
