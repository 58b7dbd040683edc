"""Restartable init containers (sidecars): started in order before the app, kept running and
restarted when they exit whatever the pod's restartPolicy, stopped after the app containers.
"""

from __future__ import annotations

import datetime

from cluster.spec import ClusterSpec

from .podutil import Json, container, create_pod, cstatus, pod_body, wait_pod


def _sidecar(name: str, script: str) -> Json:
    c = container(name, script)
    c["restartPolicy"] = "Always"
    return c


def _ts(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_sidecars_start_in_order_and_restart(cluster_spec: ClusterSpec, ns: str) -> None:
    body = pod_body(
        "sidecars",
        [container("app", "sleep 3600")],
        restart="Never",
        init=[_sidecar("s1", "sleep 3600"), _sidecar("flaky", "sleep 2; exit 1")],
    )
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec,
        ns,
        "sidecars",
        lambda p: "running" in cstatus(p, "app").get("state", {}),
        40,
        "app running",
    )
    s1 = cstatus(pod, "s1", init=True)
    assert "running" in s1["state"] and s1["started"] is True
    app_started = _ts(cstatus(pod, "app")["state"]["running"]["startedAt"])
    assert _ts(s1["state"]["running"]["startedAt"]) <= app_started
    # the flaky sidecar is restarted although the pod's restartPolicy is Never
    pod = wait_pod(
        cluster_spec,
        ns,
        "sidecars",
        lambda p: cstatus(p, "flaky", init=True).get("restartCount", 0) >= 1,
        40,
        "flaky sidecar restarted",
    )
    assert pod["status"]["phase"] == "Running"
    assert cstatus(pod, "app")["restartCount"] == 0


def test_pod_completes_when_app_exits_and_sidecars_stop_last(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    body = pod_body(
        "sidecar-done",
        [container("app", "sleep 2")],
        restart="Never",
        init=[_sidecar("log", "trap 'exit 0' TERM; while true; do sleep 0.2; done")],
    )
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec,
        ns,
        "sidecar-done",
        lambda p: p.get("status", {}).get("phase") == "Succeeded",
        60,
        "Succeeded",
    )
    app = cstatus(pod, "app")["state"]["terminated"]
    side = cstatus(pod, "log", init=True)["state"]["terminated"]
    assert app["exitCode"] == 0
    assert _ts(side["finishedAt"]) >= _ts(app["finishedAt"])
