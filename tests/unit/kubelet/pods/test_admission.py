"""Unit tests of node admission (spec.os, sysctls), runAsNonRoot against the image user, the
RuntimeClass lookup, and how the executor and the workers apply them (stubbed CRI and API).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from cri import api
from cri.errors import CRIError
from kube.apiserver import NotFound, ServerError
from kubelet.pods import admission
from kubelet.pods.admission import (
    POD_OS_NOT_SUPPORTED,
    SYSCTL_FORBIDDEN,
    Rejection,
    RuntimeClasses,
    rejected_status,
)
from kubelet.pods.backoff import BackOff
from kubelet.pods.decode import pod_from_api
from kubelet.pods.executor import CREATE_CONFIG_ERROR, PodExecutor
from kubelet.pods.model import RuntimePod
from kubelet.pods.plan import PodActions
from kubelet.pods.seams import NoVolumes
from kubelet.pods.workers import Phase, PodWorkers, _Worker

POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1"},
    "spec": {"containers": [{"name": "app", "image": "busybox:1.35"}]},
}


def make(spec: dict[str, Any] | None = None, sc: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    pod["spec"].update(spec or {})
    if sc is not None:
        pod["spec"]["containers"][0]["securityContext"] = sc
    return pod


def admit(pod_json: dict[str, Any], **kw: Any) -> Rejection | None:
    return admission.admit(pod_from_api(pod_json), **kw)


def sysctls(*names: str, **spec: Any) -> dict[str, Any]:
    items = [{"name": n, "value": "1"} for n in names]
    return make({"securityContext": {"sysctls": items}, **spec})


# ---- spec.os ------------------------------------------------------------------------------
def test_linux_and_unset_os_are_admitted() -> None:
    assert admit(make()) is None
    assert admit(make({"os": {"name": "linux"}})) is None


def test_windows_pod_is_rejected_with_upstream_reason() -> None:
    r = admit(make({"os": {"name": "windows"}}))
    assert r == Rejection(
        POD_OS_NOT_SUPPORTED, "Failed to admit pod as the OS field doesn't match node OS"
    )


# ---- sysctls ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(admission.SAFE_SYSCTLS))
def test_every_safe_sysctl_is_admitted(name: str) -> None:
    assert admit(sysctls(name)) is None


def test_slash_separated_names_are_normalized() -> None:
    assert admit(sysctls("net/ipv4/ip_local_port_range")) is None


def test_unsafe_sysctl_is_forbidden() -> None:
    r = admit(sysctls("net.ipv4.tcp_syncookies", "net.core.somaxconn"))
    assert r == Rejection(
        SYSCTL_FORBIDDEN, 'forbidden sysctl: "net.core.somaxconn" not allowlisted'
    )


def test_allowed_unsafe_sysctls_by_name_and_prefix() -> None:
    pod = sysctls("net.core.somaxconn", "kernel.msgmax")
    assert admit(pod, allowed_unsafe_sysctls=["net.core.somaxconn", "kernel.msg*"]) is None
    assert admit(pod, allowed_unsafe_sysctls=["net.core.*"]) is not None
    assert admit(pod, allowed_unsafe_sysctls=["net.*", "kernel.msgmax"]) is None


def test_net_sysctl_with_host_network_is_forbidden() -> None:
    r = admit(sysctls("net.ipv4.ip_local_port_range", hostNetwork=True))
    assert r is not None and r.reason == SYSCTL_FORBIDDEN
    assert "not allowed with host net enabled" in r.message


def test_ipc_sysctl_with_host_ipc_is_forbidden() -> None:
    r = admit(sysctls("kernel.shm_rmid_forced", hostIPC=True))
    assert r is not None and "not allowed with host ipc enabled" in r.message


def test_os_is_checked_before_sysctls() -> None:
    pod = sysctls("vm.swappiness", os={"name": "windows"})
    r = admit(pod)
    assert r is not None and r.reason == POD_OS_NOT_SUPPORTED


def test_rejected_status_is_failed_with_prefixed_message() -> None:
    status = rejected_status(Rejection("SysctlForbidden", "forbidden sysctl: x"), "BestEffort")
    assert status == {
        "phase": "Failed",
        "reason": "SysctlForbidden",
        "message": "Pod was rejected: forbidden sysctl: x",
        "qosClass": "BestEffort",
    }


# ---- runAsNonRoot -------------------------------------------------------------------------
WHERE = '(pod: "web_ns1(u-1)", container: app)'


def check(pod: dict[str, Any], uid: int | None, username: str = "") -> str | None:
    typed = pod_from_api(pod)
    return admission.verify_run_as_non_root(typed, typed.containers[0], uid, username)


def test_no_run_as_non_root_never_refuses() -> None:
    assert check(make(), 0) is None
    assert check(make(sc={"runAsNonRoot": False}), 0) is None


def test_image_running_as_root_is_refused() -> None:
    msg = f"container has runAsNonRoot and image will run as root {WHERE}"
    assert check(make(sc={"runAsNonRoot": True}), 0) == msg
    assert check(make(sc={"runAsNonRoot": True}), None, "") == msg  # no USER: root


def test_non_numeric_image_user_cannot_be_verified() -> None:
    msg = check(make(sc={"runAsNonRoot": True}), None, "root")
    assert msg == (
        "container has runAsNonRoot and image has non-numeric user (root), "
        f"cannot verify user is non-root {WHERE}"
    )


def test_non_root_image_user_and_run_as_user_pass() -> None:
    assert check(make(sc={"runAsNonRoot": True}), 1000) is None
    assert check(make(sc={"runAsNonRoot": True, "runAsUser": 1000}), 0) is None
    pod = make({"securityContext": {"runAsNonRoot": True, "runAsUser": 65534}})
    assert check(pod, 0) is None


def test_run_as_user_zero_breaks_policy() -> None:
    pod = make({"securityContext": {"runAsNonRoot": True}}, sc={"runAsUser": 0})
    assert check(pod, 1000) == f"container's runAsUser breaks non-root policy {WHERE}"


def test_needs_image_user_only_without_run_as_user() -> None:
    c = pod_from_api(make(sc={"runAsNonRoot": True}))
    assert admission.needs_image_user(c, c.containers[0])
    c = pod_from_api(make(sc={"runAsNonRoot": True, "runAsUser": 5}))
    assert not admission.needs_image_user(c, c.containers[0])


# ---- RuntimeClass lookup ------------------------------------------------------------------
class _Client:
    def __init__(self, objects: dict[str, Any], error: Exception | None = None) -> None:
        self.objects, self.error = objects, error
        self.calls: list[tuple[str, str, str]] = []

    async def get(self, resource: Any, name: str, **_: Any) -> Any:
        self.calls.append((resource.group, resource.plural, name))
        if self.error is not None:
            raise self.error
        if name not in self.objects:
            raise NotFound(code=404, reason="NotFound", message="not found")
        return self.objects[name]


async def test_runtime_class_handler_is_read_from_the_apiserver() -> None:
    client = _Client({"kata": {"handler": "kata-qemu"}})
    rc = RuntimeClasses(cast(Any, client))
    assert await rc.handler("kata") == "kata-qemu"
    assert await rc.handler("") == ""
    assert client.calls == [("node.k8s.io", "runtimeclasses", "kata")]


async def test_missing_runtime_class_names_it() -> None:
    rc = RuntimeClasses(cast(Any, _Client({})))
    with pytest.raises(admission.RuntimeClassNotFound, match='RuntimeClass "gvisor" not found'):
        await rc.handler("gvisor")


async def test_unreadable_runtime_class_is_an_error() -> None:
    rc = RuntimeClasses(
        cast(Any, _Client({}, ServerError(code=500, reason="InternalError", message="boom")))
    )
    with pytest.raises(admission.RuntimeClassError, match="failed to lookup RuntimeClass x"):
        await rc.handler("x")


# ---- the executor -------------------------------------------------------------------------
class _Runtime:
    def __init__(self, image: api.Image | None = None) -> None:
        self.image = image or api.Image(id="sha256:abc")
        self.sandboxes: list[str] = []

    async def image_status(self, image: str, **_: Any) -> api.ImageStatusResponse:
        return api.ImageStatusResponse(image=self.image)

    async def run_pod_sandbox(self, config: api.PodSandboxConfig, **kw: Any) -> str:
        self.sandboxes.append(kw.get("runtime_handler", ""))
        return "sb-1"


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def record(self, ev: Any) -> None:
        self.events.append(ev)


def executor(tmp_path: Path, rt: _Runtime, **kw: Any) -> tuple[PodExecutor, _Recorder]:
    rec = _Recorder()
    ex = PodExecutor(
        cast(Any, rt),
        cast(Any, rec),
        log_root=str(tmp_path / "logs"),
        pods_dir=tmp_path / "pods",
        backoff=BackOff(),
        memory_capacity=1 << 30,
        **kw,
    )
    return ex, rec


async def test_executor_refuses_root_image_with_event(tmp_path: Path) -> None:
    ex, rec = executor(tmp_path, _Runtime())
    pod_json = make(sc={"runAsNonRoot": True})
    pod = pod_from_api(pod_json)
    w = await ex._check_non_root(pod, pod.containers[0], "x", "f")
    assert w is not None and w.reason == CREATE_CONFIG_ERROR
    assert w.message == f"container has runAsNonRoot and image will run as root {WHERE}"
    assert [(e.reason, e.message) for e in rec.events] == [("Failed", f"Error: {w.message}")]


async def test_executor_admits_numeric_non_root_image(tmp_path: Path) -> None:
    image = api.Image(id="sha256:abc", uid=api.Int64Value(value=1000))
    ex, _ = executor(tmp_path, _Runtime(image))
    pod_json = make(sc={"runAsNonRoot": True})
    pod = pod_from_api(pod_json)
    assert await ex._check_non_root(pod, pod.containers[0], "x", "f") is None


async def test_image_status_failure_waits(tmp_path: Path) -> None:
    class Failing(_Runtime):
        async def image_status(self, image: str, **_: Any) -> api.ImageStatusResponse:
            raise CRIError(code=grpc.StatusCode.UNAVAILABLE, method="ImageStatus", message="down")

    ex, _ = executor(tmp_path, Failing())
    pod_json = make(sc={"runAsNonRoot": True})
    pod = pod_from_api(pod_json)
    w = await ex._check_non_root(pod, pod.containers[0], "x", "f")
    assert w is not None and w.reason == CREATE_CONFIG_ERROR


async def test_sandbox_gets_the_runtime_class_handler(tmp_path: Path) -> None:
    rt = _Runtime()
    rc = RuntimeClasses(cast(Any, _Client({"fast": {"handler": "runc-fast"}})))
    ex, _ = executor(tmp_path, rt, runtime_classes=rc.handler)
    pod_json = make({"runtimeClassName": "fast"})
    out = await ex.execute(
        pod_json,
        pod_from_api(pod_json),
        PodActions(create_sandbox=True),
        RuntimePod(cast(Any, "u-1")),
    )
    assert out.sandbox_error == "" and rt.sandboxes == ["runc-fast"]


async def test_missing_runtime_class_fails_the_sandbox_with_event(tmp_path: Path) -> None:
    rt = _Runtime()
    ex, rec = executor(tmp_path, rt, runtime_classes=RuntimeClasses(cast(Any, _Client({}))).handler)
    pod_json = make({"runtimeClassName": "nope"})
    out = await ex.execute(
        pod_json,
        pod_from_api(pod_json),
        PodActions(create_sandbox=True),
        RuntimePod(cast(Any, "u-1")),
    )
    assert rt.sandboxes == []
    assert out.sandbox_error == 'RuntimeClass "nope" not found'
    assert [(e.reason, e.message) for e in rec.events] == [
        ("FailedCreatePodSandBox", 'Failed to create pod sandbox: RuntimeClass "nope" not found')
    ]


# ---- the workers --------------------------------------------------------------------------
class _Status:
    def __init__(self) -> None:
        self.set_calls: list[dict[str, Any]] = []
        self.flushed: list[str] = []

    def set(self, **kw: Any) -> bool:
        self.set_calls.append(kw)
        return True

    def get(self, uid: str) -> None:
        return None

    async def flush(self, uid: str) -> None:
        self.flushed.append(uid)


class _Cache:
    def __init__(self, runtime: RuntimePod) -> None:
        self.runtime = runtime

    async def refresh(self, uid: str) -> RuntimePod:
        return self.runtime


def workers(status: _Status, rec: _Recorder, runtime: RuntimePod) -> PodWorkers:
    ex, _ = executor(Path("/nonexistent"), _Runtime())
    ex.recorder = cast(Any, rec)
    return PodWorkers(
        client=cast(Any, None),
        cache=cast(Any, _Cache(runtime)),
        executor=ex,
        events=ex,
        images=ex,
        volumes=NoVolumes(),
        teardown=ex,
        status=cast(Any, status),
        backoff=BackOff(),
        host_ips=lambda: (),
        allowed_unsafe_sysctls=["kernel.msg*"],
    )


async def test_rejected_pod_gets_failed_status_and_event_and_no_cri_call() -> None:
    status, rec = _Status(), _Recorder()
    pods = workers(status, rec, RuntimePod(cast(Any, "u-1")))
    pod_json = make({"os": {"name": "windows"}})
    w = _Worker(pod_json)
    assert await pods._sync(admission_uid(pod_json), w) is True
    assert w.phase == Phase.TERMINATED
    [call] = status.set_calls
    assert call["status"]["phase"] == "Failed"
    assert call["status"]["reason"] == POD_OS_NOT_SUPPORTED
    assert call["status"]["message"].startswith("Pod was rejected: Failed to admit pod")
    assert status.flushed == ["u-1"]
    assert [(e.type, e.reason) for e in rec.events] == [("Warning", POD_OS_NOT_SUPPORTED)]


def test_workers_honour_allowed_unsafe_sysctls() -> None:
    pods = workers(_Status(), _Recorder(), RuntimePod(cast(Any, "u-1")))
    assert (
        pods._admit(pod_from_api(make()), sysctls("kernel.msgmax"), RuntimePod(cast(Any, "u-1")))
        is None
    )


def test_running_or_deleted_pods_are_not_admitted_again() -> None:
    from kubelet.pods.model import RuntimeSandbox, SandboxState

    pods = workers(_Status(), _Recorder(), RuntimePod(cast(Any, "u-1")))
    bad = make({"os": {"name": "windows"}})
    sb = RuntimeSandbox(id=cast(Any, "s"), state=SandboxState.READY)
    running = RuntimePod(cast(Any, "u-1"), sandboxes=(sb,))
    assert pods._admit(pod_from_api(bad), bad, running) is None
    assert pods._admit(pod_from_api(bad), bad, RuntimePod(cast(Any, "u-1"))) is not None


def admission_uid(pod_json: dict[str, Any]) -> Any:
    return pod_json["metadata"]["uid"]
