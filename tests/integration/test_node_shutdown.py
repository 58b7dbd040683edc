"""Graceful node shutdown for real on the host cluster: the agent (shutdownGracePeriod 20s, 8s of
it for critical pods) talks to a private dbus-daemon where a FAKE stand-in logind
(tests/fakes/logind.py) runs; DBUS_SYSTEM_BUS_ADDRESS points the agent at it. On
PrepareForShutdown(true) the node turns NotReady, the regular pod stops (its preStop hook runs)
before the system-node-critical one, both end Failed/Terminated with DisruptionTarget, a new
pod is refused (NodeShutdown), and the inhibitor lock is released. The real logind is the
Vagrant VM test's (`vagrant halt`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec
from tests.fakes.logind import StandInLogind, dbus_daemon, private_bus

from .conftest import NODE
from .podutil import (
    Json,
    api_json,
    container,
    create_pod,
    cstatus,
    new_namespace,
    pod_body,
    wait_for,
    wait_pod,
)

pytestmark = pytest.mark.skipif(dbus_daemon() is None, reason="dbus-daemon is not installed")

SHUTDOWN_CONFIG = "shutdownGracePeriod: 20s\nshutdownGracePeriodCriticalPods: 8s"
LOOP = 'trap "exit 0" TERM; while true; do sleep 0.2; done'
"""A container that ends on SIGTERM (busybox as PID 1 would otherwise ignore it)."""


@pytest.fixture(scope="module")
def shutdown_node(
    cluster_spec: ClusterSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StandInLogind, str, Path]]:
    """The agent restarted with a shutdown grace period against a private bus; afterwards the
    pods go and the agent stops (the next module starts a fresh one)."""
    directory = Path(tmp_path_factory.mktemp("shutdown"))
    hooks = directory / "hooks"
    hooks.mkdir()
    daemon = cluster.agent_daemon(cluster_spec, NODE)
    with private_bus(directory) as address, StandInLogind(address) as logind:
        logind.inhibit_delay_usec = 60_000_000  # covers 20s: the agent writes no logind drop-in
        patch = pytest.MonkeyPatch()
        patch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        ns = ""
        try:
            process.stop(daemon)
            cluster.start_node(cluster_spec, NODE, extra=SHUTDOWN_CONFIG)
            ns = new_namespace(cluster_spec)
            yield logind, ns, hooks
        finally:
            patch.undo()
            if ns:
                cluster.api(
                    cluster_spec,
                    f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0",
                    method="DELETE",
                )
                wait_for(
                    lambda: not api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods")["items"],
                    60,
                    "pods gone",
                )
            process.stop(daemon)


def _pod(name: str, hooks: Path, *, critical: bool = False, pre_stop: str = "") -> Json:
    c = container("main", LOOP)
    body = pod_body(name, [c], grace=300)
    if pre_stop:
        c["lifecycle"] = {"preStop": {"exec": {"command": ["sh", "-c", pre_stop]}}}
        c["volumeMounts"] = [{"name": "hooks", "mountPath": "/hooks"}]
        body["spec"]["volumes"] = [{"name": "hooks", "hostPath": {"path": str(hooks)}}]
    if critical:
        body["spec"]["priorityClassName"] = "system-node-critical"
    return body


def _ready(spec: ClusterSpec) -> Json:
    node = api_json(spec, f"/api/v1/nodes/{NODE}")
    found: Json = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    return found


def _finished_at(pod: Json) -> datetime.datetime:
    stamp = cstatus(pod, "main")["state"]["terminated"]["finishedAt"]
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _stopped_for_shutdown(pod: Json) -> bool:
    status = pod.get("status") or {}
    running = (cstatus(pod, "main").get("state") or {}).get("terminated") is None
    return status.get("phase") == "Failed" and status.get("reason") == "Terminated" and not running


def test_shutdown_stops_regular_pods_before_critical_ones(
    cluster_spec: ClusterSpec, shutdown_node: tuple[StandInLogind, str, Path]
) -> None:
    spec = cluster_spec
    logind, ns, hooks = shutdown_node
    wait_for(lambda: [i for i in logind.held() if i.who == "kubelet"], 30, "the inhibitor lock")
    [lock] = logind.held()
    assert (lock.what, lock.mode) == ("shutdown", "delay")
    create_pod(spec, ns, _pod("regular", hooks, pre_stop="sleep 3; touch /hooks/regular-prestop"))
    create_pod(spec, ns, _pod("critical", hooks, critical=True))
    for name in ("regular", "critical"):
        wait_pod(spec, ns, name, lambda p: p["status"].get("phase") == "Running", 60, "Running")
    critical = api_json(spec, f"/api/v1/namespaces/{ns}/pods/critical")
    assert critical["spec"]["priority"] >= 2_000_000_000

    logind.prepare_for_shutdown(True)

    ready = wait_for(
        lambda: (r := _ready(spec))["status"] == "False" and r, 20, "the node NotReady"
    )
    assert (ready["reason"], ready["message"]) == ("KubeletNotReady", "node is shutting down")
    pods = {
        name: wait_pod(spec, ns, name, _stopped_for_shutdown, 40, "Failed/Terminated")
        for name in ("regular", "critical")
    }
    for pod in pods.values():
        status = pod["status"]
        assert status["message"] == "Pod was terminated in response to imminent node shutdown."
        [target] = [c for c in status["conditions"] if c["type"] == "DisruptionTarget"]
        assert (target["status"], target["reason"]) == ("True", "TerminationByKubelet")
    # the regular pod's preStop (3 s) ran before it stopped; the critical one was killed after
    assert (hooks / "regular-prestop").exists()
    assert _finished_at(pods["critical"]) >= _finished_at(pods["regular"])
    wait_for(lambda: not logind.held(), 30, "the inhibitor lock released")

    create_pod(spec, ns, _pod("late", hooks))
    late = wait_pod(spec, ns, "late", lambda p: p["status"].get("phase") == "Failed", 30, "refused")
    assert (late["status"]["reason"], late["status"]["message"]) == (
        "NodeShutdown",
        "Pod was rejected: Pod was rejected as the node is shutting down.",  # as rejectPod
    )
    selector = f"involvedObject.kind=Node,involvedObject.name={NODE},reason=Shutdown"
    found = api_json(spec, f"/api/v1/namespaces/default/events?fieldSelector={selector}")
    assert "Shutdown manager detected shutdown event" in [e["message"] for e in found["items"]]
