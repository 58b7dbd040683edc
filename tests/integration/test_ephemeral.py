"""Ephemeral containers on the real cluster as `kubectl debug --target` makes them: started in a
running pod, sharing the target's PID namespace, shown in status, logs readable, never restarted.
"""

from __future__ import annotations

import os
import subprocess
import time

from kubelet.cluster import up as cluster
from kubelet.cluster.spec import ClusterSpec

from .podutil import Json, container, create_pod, cstatus, get_pod, pod_body, wait_pod

TARGET_CMD = "echo up; exec sleep 3601"
DEBUG_CMD = "cat /proc/1/cmdline | tr '\\0' ' '; echo; sleep 2; echo debug-done"


def _kubectl(spec: ClusterSpec, ns: str, *args: str) -> str:
    kubectl = cluster.find_binaries(build=False).k8s("kubectl")
    env = {**os.environ, "KUBECONFIG": str(spec.admin_kubeconfig)}
    r = subprocess.run(
        [str(kubectl), "-n", ns, *args], capture_output=True, env=env, timeout=60, check=False
    )
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode()


def _ephemeral(pod: Json, name: str) -> Json:
    for s in pod.get("status", {}).get("ephemeralContainerStatuses") or []:
        if s["name"] == name:
            result: Json = s
            return result
    return {}


def _state(pod: Json, name: str) -> Json:
    state: Json = _ephemeral(pod, name).get("state", {})
    return state


def test_kubectl_debug_target_runs_once_in_target_pid_namespace(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    spec = cluster_spec
    create_pod(spec, ns, pod_body("dbg", [container("c", TARGET_CMD)], grace=1))
    wait_pod(spec, ns, "dbg", lambda p: "running" in cstatus(p, "c").get("state", {}), 60, "c up")
    # what `kubectl debug -it dbg --image=busybox:1.35 --target=c -- ...` does, without -it:
    # a PATCH of the pod's ephemeralcontainers subresource
    _kubectl(
        spec,
        ns,
        "debug",
        "dbg",
        "--image=docker.io/library/busybox:1.35",
        "--image-pull-policy=IfNotPresent",
        "--target=c",
        "--container=debugger",
        "--",
        "sh",
        "-c",
        DEBUG_CMD,
    )
    pod = wait_pod(
        spec, ns, "dbg", lambda p: bool(_state(p, "debugger")), 30, "ephemeral status listed"
    )
    pod = wait_pod(
        spec,
        ns,
        "dbg",
        lambda p: "terminated" in _state(p, "debugger"),
        60,
        "ephemeral container ran to completion",
    )
    st = _ephemeral(pod, "debugger")
    term = st["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert st["ready"] is False and st["restartCount"] == 0
    assert st["containerID"].startswith("containerd://")
    logs = _kubectl(spec, ns, "logs", "dbg", "-c", "debugger")
    # PID 1 in the debugger's PID namespace is the target's process: the namespace is shared
    assert "sleep 3601" in logs and "debug-done" in logs, logs
    # the pod stays Running and Ready, and the exited ephemeral container is not started again
    time.sleep(4)
    later = get_pod(spec, ns, "dbg")
    assert later is not None
    assert _ephemeral(later, "debugger")["containerID"] == st["containerID"]
    assert "terminated" in _state(later, "debugger")
    assert later["status"]["phase"] == "Running"
    ready = {c["type"]: c["status"] for c in later["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert cstatus(later, "c")["restartCount"] == 0
