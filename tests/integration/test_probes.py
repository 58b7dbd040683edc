"""Probes on the real cluster: readiness (httpGet, tcpSocket, a closed port), liveness exec
restarts, an exec probe over its timeout, and a startup probe holding liveness back."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from cluster import up as cluster
from cluster.spec import ClusterSpec

from .conftest import NODE
from .podutil import (
    container,
    create_pod,
    cstatus,
    events,
    get_pod,
    pod_body,
    wait_for,
    wait_pod,
)

Json = dict[str, Any]
HTTPD = "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"


def _diagnose(spec: ClusterSpec, ns: str, name: str) -> str:
    """Events of the pod and the agent's last log lines, for a failed wait."""
    evs = [f"{e['reason']}: {e['message']}" for e in events(spec, ns, name)]
    log = cluster.agent_daemon(spec, NODE).log_file
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    return "\nevents:\n" + "\n".join(evs) + "\nagent log:\n" + "\n".join(tail)


def _wait(
    spec: ClusterSpec, ns: str, name: str, pred: Callable[[Json], bool], timeout: float, what: str
) -> Json:
    try:
        return wait_pod(spec, ns, name, pred, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}{_diagnose(spec, ns, name)}") from None


def _condition(pod: Json, ctype: str) -> str:
    for c in pod.get("status", {}).get("conditions") or []:
        if c["type"] == ctype:
            return str(c["status"])
    return ""


def _restarts(pod: Json) -> int:
    return int(cstatus(pod, "c").get("restartCount", 0))


def _messages(spec: ClusterSpec, ns: str, name: str, reason: str) -> list[str]:
    return [str(e["message"]) for e in events(spec, ns, name) if e["reason"] == reason]


def _start(spec: ClusterSpec, ns: str, name: str, script: str, **probes: Json) -> None:
    c = container("c", script)
    c.update(probes)
    create_pod(spec, ns, pod_body(name, [c], grace=1))


def test_readiness_http_get_becomes_ready(cluster_spec: ClusterSpec, ns: str) -> None:
    probe = {"httpGet": {"port": 8080, "path": "/index.html"}, "periodSeconds": 1}
    _start(cluster_spec, ns, "ready-http", HTTPD, readinessProbe=probe)
    pod = _wait(
        cluster_spec, ns, "ready-http", lambda p: _condition(p, "Ready") == "True", 60, "Ready"
    )
    assert cstatus(pod, "c")["ready"] is True
    assert _condition(pod, "ContainersReady") == "True"


def test_readiness_tcp_socket(cluster_spec: ClusterSpec, ns: str) -> None:
    probe = {"tcpSocket": {"port": "web"}, "periodSeconds": 1}
    c = container("c", HTTPD)
    c.update(readinessProbe=probe, ports=[{"name": "web", "containerPort": 8080}])
    create_pod(cluster_spec, ns, pod_body("ready-tcp", [c], grace=1))
    _wait(cluster_spec, ns, "ready-tcp", lambda p: _condition(p, "Ready") == "True", 60, "Ready")


def test_readiness_on_closed_port_never_ready_never_restarted(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    probe = {"httpGet": {"port": 8081, "path": "/"}, "periodSeconds": 1, "failureThreshold": 1}
    _start(cluster_spec, ns, "closed", HTTPD, readinessProbe=probe)
    _wait(
        cluster_spec,
        ns,
        "closed",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    wait_for(lambda: _messages(cluster_spec, ns, "closed", "Unhealthy"), 30, "Unhealthy event", 0.5)
    pod = get_pod(cluster_spec, ns, "closed") or {}
    assert _condition(pod, "Ready") == "False"
    assert cstatus(pod, "c")["ready"] is False
    assert _restarts(pod) == 0
    msg = _messages(cluster_spec, ns, "closed", "Unhealthy")[0]
    assert msg.startswith("Readiness probe failed: ")


def test_liveness_exec_restarts_container(cluster_spec: ClusterSpec, ns: str) -> None:
    script = "touch /tmp/healthy; sleep 3; rm -f /tmp/healthy; sleep 600"
    probe = {
        "exec": {"command": ["cat", "/tmp/healthy"]},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    _start(cluster_spec, ns, "live", script, livenessProbe=probe)
    pod = _wait(cluster_spec, ns, "live", lambda p: _restarts(p) >= 2, 120, "two restarts")
    last = cstatus(pod, "c")["lastState"].get("terminated", {})
    assert last, cstatus(pod, "c")
    msgs = _messages(cluster_spec, ns, "live", "Unhealthy")
    assert any(m.startswith("Liveness probe failed: ") for m in msgs), msgs
    assert _messages(cluster_spec, ns, "live", "Killing")


def test_exec_probe_over_its_timeout_is_a_failure(cluster_spec: ClusterSpec, ns: str) -> None:
    probe = {
        "exec": {"command": ["sleep", "10"]},
        "timeoutSeconds": 1,
        "periodSeconds": 2,
        "failureThreshold": 1,
    }
    _start(cluster_spec, ns, "slow", "sleep 600", livenessProbe=probe)
    _wait(cluster_spec, ns, "slow", lambda p: _restarts(p) >= 1, 90, "a restart")
    msgs = _messages(cluster_spec, ns, "slow", "Unhealthy")
    assert any("timed out" in m for m in msgs), msgs


def test_startup_probe_holds_liveness_back(cluster_spec: ClusterSpec, ns: str) -> None:
    check = {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1}
    _start(
        cluster_spec,
        ns,
        "startup",
        "sleep 6; touch /tmp/started; sleep 600",
        startupProbe={**check, "failureThreshold": 30},
        livenessProbe={**check, "failureThreshold": 1},
        readinessProbe=check,
    )
    pod = _wait(
        cluster_spec,
        ns,
        "startup",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    assert cstatus(pod, "c")["started"] is False
    pod = _wait(
        cluster_spec, ns, "startup", lambda p: _condition(p, "Ready") == "True", 60, "Ready"
    )
    assert cstatus(pod, "c")["started"] is True
    assert _restarts(pod) == 0
    msgs = _messages(cluster_spec, ns, "startup", "Unhealthy")
    assert msgs and all(m.startswith("Startup probe failed: ") for m in msgs), msgs


def test_liveness_kill_uses_probe_termination_grace_period(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    """The container ignores SIGTERM and the pod's grace period is 120 s: only the probe's own
    terminationGracePeriodSeconds (2 s) lets the restart come quickly."""
    c = container("c", "trap '' TERM; while true; do sleep 1; done")
    c["livenessProbe"] = {
        "exec": {"command": ["false"]},
        "initialDelaySeconds": 2,
        "periodSeconds": 1,
        "failureThreshold": 1,
        "terminationGracePeriodSeconds": 2,
    }
    create_pod(cluster_spec, ns, pod_body("probe-grace", [c], grace=120))
    pod = _wait(cluster_spec, ns, "probe-grace", lambda p: _restarts(p) >= 1, 60, "a restart")
    last = cstatus(pod, "c")["lastState"]["terminated"]
    assert last["exitCode"] == 137, last  # SIGKILL after the short grace period
    lived = _parse(last["finishedAt"]) - _parse(last["startedAt"])
    # initial delay 2 s + one failed probe + 2 s grace, far from the pod's 120 s
    assert lived <= 15, last


def _parse(ts: str) -> float:
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
