"""Ephemeral containers on the real cluster as `kubectl debug --target` makes them: started in a
running pod, sharing the target's PID namespace, shown in status, logs readable, never restarted.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time

from cluster import up as cluster
from cluster.spec import ClusterSpec

from .podutil import Json, container, create_pod, cstatus, events, get_pod, pod_body, wait_pod

TARGET_CMD = "echo up; exec sleep 3601"
DEBUG_CMD = "cat /proc/1/cmdline | tr '\\0' ' '; echo; sleep 4; echo debug-done"


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
    wait_pod(spec, ns, "dbg", lambda p: "running" in _state(p, "debugger"), 30, "debugger running")
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
    started = [
        e["involvedObject"].get("fieldPath")
        for e in events(spec, ns, "dbg")
        if e["reason"] == "Started"
    ]
    assert "spec.ephemeralContainers{debugger}" in started, started


def test_kubectl_debug_interactive_attaches_to_the_ephemeral_container(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    """`kubectl debug -i`: the ephemeral container gets stdin, kubectl attaches to it once it
    runs, and what the shell reads from kubectl's stdin runs inside, next to the target. stdin
    stays open until the answer is back (the runtime detaches an attach when its stdin ends)."""
    spec = cluster_spec
    create_pod(spec, ns, pod_body("dbgi", [container("c", TARGET_CMD)], grace=1))
    wait_pod(spec, ns, "dbgi", lambda p: "running" in cstatus(p, "c").get("state", {}), 60, "up")
    kubectl = cluster.find_binaries(build=False).k8s("kubectl")
    env = {**os.environ, "KUBECONFIG": str(spec.admin_kubeconfig)}
    args = ["debug", "-i", "dbgi", "--image=docker.io/library/busybox:1.35"]
    args += ["--image-pull-policy=IfNotPresent", "--target=c", "--container=shell", "--", "sh"]
    proc = subprocess.Popen(
        [str(kubectl), "-n", ns, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    out = b""
    try:
        proc.stdin.write(b"echo from-stdin $(tr '\\0' ' ' < /proc/1/cmdline)\n")
        proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 60
            while b"from-stdin sleep 3601" not in out and time.monotonic() < deadline:
                if sel.select(timeout=1):
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    out += chunk
        proc.stdin.write(b"exit 0\n")
        proc.stdin.close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert b"from-stdin sleep 3601" in out, f"stdout: {out!r}\nstderr: {stderr}"
    pod = wait_pod(
        spec, ns, "dbgi", lambda p: "terminated" in _state(p, "shell"), 30, "shell exited"
    )
    assert _ephemeral(pod, "shell")["state"]["terminated"]["exitCode"] == 0
