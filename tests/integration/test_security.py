"""Security context, node admission and RuntimeClass on the real cluster: containers report what
they see through their termination message; refused pods are checked in status and events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cluster import up as cluster
from cluster.spec import ClusterSpec
from kube.facts import mem_total_bytes

from .conftest import NODE
from .podutil import (
    api_json,
    container,
    create_pod,
    cstatus,
    events,
    pod_body,
    wait_for,
    wait_pod,
    waiting_reason,
)

Json = dict[str, Any]
RUNTIMECLASSES = "/apis/node.k8s.io/v1/runtimeclasses"


def terminated(pod: Json, name: str = "c") -> Json:
    result: Json = cstatus(pod, name).get("state", {}).get("terminated", {})
    return result


def run_to_end(spec: ClusterSpec, ns: str, body: Json, timeout: float = 60) -> str:
    """Create a restartPolicy Never pod, wait for container c to end; its termination message."""
    name = body["metadata"]["name"]
    create_pod(spec, ns, body)
    pod = wait_pod(spec, ns, name, lambda p: bool(terminated(p)), timeout, "container ended")
    return str(terminated(pod).get("message", ""))


def one(script: str, name: str, sc: Json | None = None, pod_sc: Json | None = None) -> Json:
    c = container("c", script)
    if sc is not None:
        c["securityContext"] = sc
    body = pod_body(name, [c], restart="Never")
    if pod_sc is not None:
        body["spec"]["securityContext"] = pod_sc
    return body


def event_with(spec: ClusterSpec, ns: str, name: str, reason: str, timeout: float = 30) -> Json:
    found: list[Json] = wait_for(
        lambda: [e for e in events(spec, ns, name) if e["reason"] == reason],
        timeout,
        f"{reason} event for {name}",
    )
    return found[0]


def test_run_as_user_group_and_supplemental_groups(cluster_spec: ClusterSpec, ns: str) -> None:
    pod_sc = {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000]}
    out = run_to_end(cluster_spec, ns, one("id > /dev/termination-log", "ids", pod_sc=pod_sc))
    assert "uid=1000" in out and "gid=3000" in out, out
    assert "4000" in out.partition("groups=")[2], out


def test_container_run_as_user_overrides_the_pod(cluster_spec: ClusterSpec, ns: str) -> None:
    body = one("id -u > /dev/termination-log", "override", {"runAsUser": 2222}, {"runAsUser": 1})
    assert run_to_end(cluster_spec, ns, body).strip() == "2222"


def test_read_only_root_filesystem(cluster_spec: ClusterSpec, ns: str) -> None:
    script = "if touch /x; then echo writable; else echo readonly; fi > /dev/termination-log"
    ro = run_to_end(cluster_spec, ns, one(script, "ro", {"readOnlyRootFilesystem": True}))
    assert ro.strip() == "readonly"
    rw = run_to_end(cluster_spec, ns, one(script, "rw"))
    assert rw.strip() == "writable"


def test_capabilities_drop_all_makes_chown_fail(cluster_spec: ClusterSpec, ns: str) -> None:
    script = (
        "touch /tmp/f; if chown 1234 /tmp/f; then echo allowed; else echo denied; fi"
        " > /dev/termination-log"
    )
    dropped = one(script, "nocaps", {"capabilities": {"drop": ["ALL"]}})
    assert run_to_end(cluster_spec, ns, dropped).strip() == "denied"
    assert run_to_end(cluster_spec, ns, one(script, "caps")).strip() == "allowed"


def test_safe_sysctl_is_set_in_the_pod(cluster_spec: ClusterSpec, ns: str) -> None:
    script = "cat /proc/sys/net/ipv4/ip_local_port_range > /dev/termination-log"
    pod_sc = {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "20000 40001"}]}
    out = run_to_end(cluster_spec, ns, one(script, "safe-sysctl", pod_sc=pod_sc))
    assert out.split() == ["20000", "40001"]


def _rejected(spec: ClusterSpec, ns: str, body: Json, reason: str) -> Json:
    name = body["metadata"]["name"]
    create_pod(spec, ns, body)
    pod = wait_pod(
        spec, ns, name, lambda p: p.get("status", {}).get("phase") == "Failed", 30, "rejected"
    )
    status = pod["status"]
    assert status["reason"] == reason
    assert status["message"].startswith("Pod was rejected: ")
    assert not status.get("containerStatuses")  # nothing ever ran
    event = event_with(spec, ns, name, reason)
    assert event["type"] == "Warning"
    return pod


def test_unsafe_sysctl_is_forbidden(cluster_spec: ClusterSpec, ns: str) -> None:
    pod_sc = {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}
    pod = _rejected(
        cluster_spec, ns, one("true", "unsafe-sysctl", pod_sc=pod_sc), "SysctlForbidden"
    )
    assert pod["status"]["message"] == (
        'Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted'
    )


def test_windows_pod_is_not_supported(cluster_spec: ClusterSpec, ns: str) -> None:
    body = one("true", "windows")
    body["spec"]["os"] = {"name": "windows"}
    pod = _rejected(cluster_spec, ns, body, "PodOSNotSupported")
    assert pod["status"]["message"] == (
        "Pod was rejected: Failed to admit pod as the OS field doesn't match node OS"
    )


def test_run_as_non_root_refuses_a_root_image(cluster_spec: ClusterSpec, ns: str) -> None:
    body = one("true", "nonroot", {"runAsNonRoot": True})
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec,
        ns,
        "nonroot",
        lambda p: waiting_reason(p, "c") == "CreateContainerConfigError",
        60,
        "CreateContainerConfigError",
    )
    message = cstatus(pod, "c")["state"]["waiting"]["message"]
    uid = pod["metadata"]["uid"]
    assert message == (
        "container has runAsNonRoot and image will run as root "
        f'(pod: "nonroot_{ns}({uid})", container: c)'
    )
    assert event_with(cluster_spec, ns, "nonroot", "Failed")["message"] == f"Error: {message}"


def test_run_as_non_root_with_a_non_root_user_runs(cluster_spec: ClusterSpec, ns: str) -> None:
    body = one("id -u > /dev/termination-log", "nonroot-ok", {"runAsNonRoot": True}, {})
    body["spec"]["securityContext"] = {"runAsUser": 1000}
    assert run_to_end(cluster_spec, ns, body).strip() == "1000"


@pytest.fixture
def runtime_class(cluster_spec: ClusterSpec) -> Iterator[Any]:
    made: list[str] = []

    def make(handler: str) -> str:
        name = f"rc-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": name},
            "handler": handler,
        }
        api_json(cluster_spec, RUNTIMECLASSES, method="POST", body=body)
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.api(cluster_spec, f"{RUNTIMECLASSES}/{name}", method="DELETE")


def test_runtime_class_handler_reaches_the_runtime(
    cluster_spec: ClusterSpec, ns: str, runtime_class: Any
) -> None:
    ok = one("echo ran > /dev/termination-log", "rc-runc")
    ok["spec"]["runtimeClassName"] = runtime_class("runc")
    assert run_to_end(cluster_spec, ns, ok).strip() == "ran"
    bad = one("true", "rc-unknown")
    bad["spec"]["runtimeClassName"] = runtime_class("no-such-handler")
    create_pod(cluster_spec, ns, bad)
    event = event_with(cluster_spec, ns, "rc-unknown", "FailedCreatePodSandBox")
    assert "no-such-handler" in event["message"], event["message"]


def test_missing_runtime_class_fails_the_sandbox(
    cluster_spec: ClusterSpec, ns: str, runtime_class: Any
) -> None:
    """The apiserver refuses pods naming a missing RuntimeClass, so the pod is created while it
    exists (unscheduled: an unknown scheduler), the class is deleted, then the pod is bound."""
    name = runtime_class("runc")
    body = one("true", "rc-missing")
    body["spec"]["runtimeClassName"] = name
    del body["spec"]["nodeName"]
    body["spec"]["schedulerName"] = "nobody"
    create_pod(cluster_spec, ns, body)
    cluster.api(cluster_spec, f"{RUNTIMECLASSES}/{name}", method="DELETE")
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "rc-missing"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
    }
    api_json(
        cluster_spec,
        f"/api/v1/namespaces/{ns}/pods/rc-missing/binding",
        method="POST",
        body=binding,
    )
    event = event_with(cluster_spec, ns, "rc-missing", "FailedCreatePodSandBox")
    assert event["message"] == f'Failed to create pod sandbox: RuntimeClass "{name}" not found'


def test_oom_score_adj_follows_the_qos_class(cluster_spec: ClusterSpec, ns: str) -> None:
    script = "cat /proc/self/oom_score_adj > /dev/termination-log"
    best_effort = run_to_end(cluster_spec, ns, one(script, "oom-besteffort"))
    assert best_effort.strip() == "1000"
    burstable = one(script, "oom-burstable")
    burstable["spec"]["containers"][0]["resources"] = {"requests": {"memory": "64Mi"}}
    with open("/proc/meminfo", encoding="ascii") as f:
        total = mem_total_bytes(f.read())
    want = max(3, min(999, 1000 - 1000 * (64 << 20) // total))
    assert run_to_end(cluster_spec, ns, burstable).strip() == str(want)
