"""Pods through the apiserver on pykubelet: Running with an IP, the restartPolicy matrix, init
containers, CrashLoopBackOff delays, deletion within the grace period, image pull errors, and an
agent restart that leaves running pods alone.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec
from cri import api
from cri.client import RuntimeClient

from .conftest import NODE
from .podutil import (
    Json,
    api_json,
    container,
    create_pod,
    cstatus,
    events,
    get_pod,
    pod_body,
    wait_for,
    wait_pod,
    waiting_reason,
)


def _phase(pod: Json) -> str:
    return str(pod.get("status", {}).get("phase", ""))


def _phase_is(phase: str) -> Callable[[Json], bool]:
    return lambda pod: _phase(pod) == phase


def _ts(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ready(pod: Json) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _cri_containers(spec: ClusterSpec, uid: str) -> list[api.Container]:
    async def go() -> list[api.Container]:
        async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
            f = api.ContainerFilter(label_selector={"io.kubernetes.pod.uid": uid})
            return await rt.list_containers(filter=f)

    return asyncio.run(go())


def test_pod_runs_with_ip_and_upstream_labels(cluster_spec: ClusterSpec, ns: str) -> None:
    created = create_pod(cluster_spec, ns, pod_body("web", [container("c", "sleep 3600")]))
    pod = wait_pod(
        cluster_spec,
        ns,
        "web",
        lambda p: _phase(p) == "Running" and _ready(p),
        30,
        "Running and Ready",
    )
    assert pod["status"]["podIP"]
    assert pod["status"]["hostIP"]
    st = cstatus(pod, "c")
    assert st["ready"] and st["started"] and st["restartCount"] == 0
    assert st["containerID"].startswith("containerd://")
    assert "running" in st["state"]
    assert pod["status"]["qosClass"] == "BestEffort"
    [c] = _cri_containers(cluster_spec, created["metadata"]["uid"])
    assert c.labels["io.kubernetes.pod.name"] == "web"
    assert c.labels["io.kubernetes.pod.namespace"] == ns
    assert c.labels["io.kubernetes.container.name"] == "c"
    reasons = [e["reason"] for e in events(cluster_spec, ns, "web")]
    assert {"Pulled", "Created", "Started"} <= set(reasons)


MATRIX = [
    # restartPolicy, exit code, expected phase, restarted?
    ("Never", 0, "Succeeded", False),
    ("Never", 1, "Failed", False),
    ("OnFailure", 0, "Succeeded", False),
    ("OnFailure", 1, "Running", True),
    ("Always", 0, "Running", True),
    ("Always", 1, "Running", True),
]


def test_restart_policy_matrix(cluster_spec: ClusterSpec, ns: str) -> None:
    for policy, code, _, _ in MATRIX:
        name = f"rp-{policy.lower()}-{code}"
        create_pod(
            cluster_spec, ns, pod_body(name, [container("c", f"exit {code}")], restart=policy)
        )
    for policy, code, phase, restarted in MATRIX:
        name = f"rp-{policy.lower()}-{code}"
        if restarted:
            pod = wait_pod(
                cluster_spec,
                ns,
                name,
                lambda p: cstatus(p, "c").get("restartCount", 0) >= 1,
                30,
                f"{name} restarted",
            )
        else:
            pod = wait_pod(cluster_spec, ns, name, _phase_is(phase), 30, f"{name} {phase}")
            time.sleep(1)
            pod = get_pod(cluster_spec, ns, name) or {}
            assert cstatus(pod, "c")["restartCount"] == 0, name
            assert cstatus(pod, "c")["state"]["terminated"]["exitCode"] == code
        assert _phase(pod) == phase, (name, pod["status"])


def test_init_containers_run_in_order(cluster_spec: ClusterSpec, ns: str) -> None:
    body = pod_body(
        "init-order",
        [container("app", "echo app")],
        restart="Never",
        init=[container("i1", "sleep 1"), container("i2", "sleep 1")],
    )
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec, ns, "init-order", lambda p: _phase(p) == "Succeeded", 40, "Succeeded"
    )
    i1 = cstatus(pod, "i1", init=True)["state"]["terminated"]
    i2 = cstatus(pod, "i2", init=True)["state"]["terminated"]
    app = cstatus(pod, "app")["state"]["terminated"]
    assert _ts(i1["finishedAt"]) <= _ts(i2["startedAt"])
    assert _ts(i2["finishedAt"]) <= _ts(app["startedAt"])
    assert i1["exitCode"] == i2["exitCode"] == app["exitCode"] == 0


def test_failing_init_holds_app_containers(cluster_spec: ClusterSpec, ns: str) -> None:
    body = pod_body(
        "init-fail", [container("app", "sleep 3600")], init=[container("bad", "exit 1")]
    )
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec,
        ns,
        "init-fail",
        lambda p: cstatus(p, "bad", init=True).get("restartCount", 0) >= 1,
        30,
        "init container restarted",
    )
    assert _phase(pod) == "Pending"
    assert waiting_reason(pod, "app") == "PodInitializing"
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Initialized"] == "False"
    assert "running" not in cstatus(pod, "app").get("state", {})


def test_crash_loop_backoff_delays_grow(cluster_spec: ClusterSpec, ns: str) -> None:
    create_pod(cluster_spec, ns, pod_body("crash", [container("c", "exit 2")]))
    starts: dict[int, float] = {}
    reasons: set[str] = set()

    def third_restart() -> bool:
        pod = get_pod(cluster_spec, ns, "crash") or {}
        st = cstatus(pod, "c")
        count = st.get("restartCount", 0)
        starts.setdefault(count, time.monotonic())
        reasons.add(waiting_reason(pod, "c"))
        return bool(count >= 3)

    wait_for(third_restart, 60, "third restart", interval=0.2)
    assert "CrashLoopBackOff" in reasons
    gap2, gap3 = starts[2] - starts[1], starts[3] - starts[2]
    assert 8 <= gap2 <= 15, gap2
    assert gap3 >= gap2 + 5, (gap2, gap3)
    assert "BackOff" in [e["reason"] for e in events(cluster_spec, ns, "crash")]


def test_delete_stops_containers_then_removes_pod(cluster_spec: ClusterSpec, ns: str) -> None:
    polite = container("c", "trap 'exit 0' TERM; while true; do sleep 0.2; done")
    stubborn = container("c", "trap '' TERM; while true; do sleep 0.2; done")
    uids = {}
    for name, c in (("polite", polite), ("stubborn", stubborn)):
        created = create_pod(cluster_spec, ns, pod_body(name, [c], grace=4))
        uids[name] = created["metadata"]["uid"]
    for name in uids:
        wait_pod(cluster_spec, ns, name, lambda p: _phase(p) == "Running", 30, "Running")
    t0 = time.monotonic()
    for name in uids:
        api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/{name}", method="DELETE")
    wait_for(lambda: get_pod(cluster_spec, ns, "polite") is None, 10, "polite pod gone")
    polite_took = time.monotonic() - t0
    wait_for(lambda: get_pod(cluster_spec, ns, "stubborn") is None, 15, "stubborn pod gone")
    stubborn_took = time.monotonic() - t0
    assert polite_took < 3, polite_took
    assert 4 <= stubborn_took < 10, stubborn_took
    # removed from the runtime right after the object goes
    gone = lambda: all(_cri_containers(cluster_spec, u) == [] for u in uids.values())  # noqa: E731
    wait_for(gone, 10, "containers removed from the runtime")


def test_missing_image_backs_off_without_blocking_others(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    # A registry on a closed loopback port: the pull fails at once and nothing leaves the host.
    bad = container("c", "true", image="127.0.0.1:1/pykubelet/nosuch:1.0")
    create_pod(cluster_spec, ns, pod_body("noimg", [bad]))
    seen: set[str] = set()

    def both_reasons() -> bool:
        seen.add(waiting_reason(get_pod(cluster_spec, ns, "noimg") or {}, "c"))
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    wait_for(both_reasons, 40, "ErrImagePull then ImagePullBackOff", interval=0.2)
    create_pod(cluster_spec, ns, pod_body("neighbour", [container("c", "sleep 3600")]))
    wait_pod(
        cluster_spec, ns, "neighbour", lambda p: _phase(p) == "Running", 20, "neighbour Running"
    )
    reasons = {e["reason"] for e in events(cluster_spec, ns, "noimg")}
    assert {"Pulling", "Failed", "BackOff"} <= reasons


def _snapshot(spec: ClusterSpec, ns: str, names: list[str]) -> dict[str, Json]:
    return {n: (get_pod(spec, ns, n) or {}).get("status", {}) for n in names}


def test_agent_restart_keeps_running_pods(cluster_spec: ClusterSpec, ns: str) -> None:
    names = [f"keep-{i}" for i in range(20)]
    for n in names:
        create_pod(cluster_spec, ns, pod_body(n, [container("c", "sleep 3600")]))
    for n in names:
        wait_pod(
            cluster_spec, ns, n, lambda p: _phase(p) == "Running" and _ready(p), 60, f"{n} Running"
        )
    time.sleep(2)
    before = _snapshot(cluster_spec, ns, names)
    agent = cluster.agent_daemon(cluster_spec, NODE)
    process.stop(agent)
    cluster.start_node(cluster_spec, NODE)
    time.sleep(12)  # a PLEG relist, a resync and a status round
    after = _snapshot(cluster_spec, ns, names)
    for n in names:
        b, a = cstatus({"status": before[n]}, "c"), cstatus({"status": after[n]}, "c")
        assert a["containerID"] == b["containerID"], n
        assert a["restartCount"] == b["restartCount"] == 0, n
    assert after == before


def _set_condition(spec: ClusterSpec, ns: str, name: str, ctype: str, status: str) -> None:
    """What a controller does for a readiness gate: PUT the pod's status with the condition."""
    path = f"/api/v1/namespaces/{ns}/pods/{name}/status"
    for _ in range(20):
        pod = api_json(spec, f"/api/v1/namespaces/{ns}/pods/{name}")
        conds = [c for c in pod["status"].get("conditions", []) if c["type"] != ctype]
        pod["status"]["conditions"] = [*conds, {"type": ctype, "status": status}]
        code, raw = cluster.api(spec, path, method="PUT", body=pod)
        if code < 300:
            return
        assert code == 409, (code, raw[:300])  # the node wrote in between: read again
    raise AssertionError(f"condition {ctype} of {ns}/{name} not set: conflicts")


def test_readiness_gates_follow_conditions_set_by_others(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    # The upstream "should support pod readiness gates": Ready only once every gate's condition
    # is True, and back to False when one is not; the node never writes the gates back.
    body = pod_body("gated", [container("c", "sleep 3600")], grace=1)
    body["spec"]["readinessGates"] = [{"conditionType": "x.io/a"}, {"conditionType": "x.io/b"}]
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(cluster_spec, ns, "gated", _phase_is("Running"), 30, "Running")
    conds = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conds["Ready"]["reason"] == "ReadinessGatesNotReady"
    _set_condition(cluster_spec, ns, "gated", "x.io/a", "True")
    time.sleep(2)
    assert not _ready(get_pod(cluster_spec, ns, "gated") or {}), "one gate of two is not enough"
    _set_condition(cluster_spec, ns, "gated", "x.io/b", "True")
    wait_pod(cluster_spec, ns, "gated", _ready, 10, "Ready once both gates are True")
    _set_condition(cluster_spec, ns, "gated", "x.io/a", "False")
    pod = wait_pod(cluster_spec, ns, "gated", lambda p: not _ready(p), 10, "not Ready again")
    conds = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conds["x.io/a"]["status"] == "False", "the node must not write its old copy back"
    assert conds["Ready"]["message"] == (
        'the status of pod readiness gate "x.io/a" is not "True", but False'
    )
