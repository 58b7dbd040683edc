"""Status derivation: container statuses, phase rules, conditions, IPs, startTime and QoS."""

from __future__ import annotations

from typing import Any

import pytest

from kubelet.pods.model import (
    ContainerID,
    ContainerState,
    Pod,
    ProbeResults,
    RestartPolicy,
    RuntimePod,
    RuntimeSandbox,
    SandboxID,
    SandboxState,
    Waiting,
)
from kubelet.pods.podstatus import (
    derive_pod_status,
    iso,
    with_others_conditions,
    written_conditions,
)
from kubelet.pods.qos import qos_class
from tests.unit.kubelet.pods.fixtures import (
    DEAD_SB,
    NOW,
    ctr,
    exited,
    other,
    pod,
    rt,
    running,
    sidecar,
)

ALWAYS, ON_FAILURE, NEVER = RestartPolicy.ALWAYS, RestartPolicy.ON_FAILURE, RestartPolicy.NEVER
T0 = "2026-11-23T12:00:00Z"
T1 = "2026-11-23T12:05:00Z"
CRASH = Waiting("CrashLoopBackOff", "back-off 10s restarting failed container=a pod=default/web")


def derive(p: Pod, r: RuntimePod, **kw: Any) -> dict[str, Any]:
    kw.setdefault("previous_status", None)
    kw.setdefault("now_iso", T1)
    return derive_pod_status(p, r, **kw)


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def by_name(status: dict[str, Any], key: str = "containerStatuses") -> dict[str, Any]:
    return {s["name"]: s for s in status[key]}


# ---------------------------------------------------------------- container statuses


def test_running_container_status_fields() -> None:
    r = rt(running("a", restart=2, image="docker.io/library/img:1", image_ref="sha256:abc"))
    s = by_name(derive(pod("a"), r))["a"]
    assert s["state"] == {"running": {"startedAt": iso(NOW - 100)}}
    assert s["containerID"] == "containerd://a-2"
    assert s["restartCount"] == 2
    assert s["image"] == "docker.io/library/img:1" and s["imageID"] == "sha256:abc"
    assert s["ready"] and s["started"]
    assert s["lastState"] == {}


def test_last_state_survives_container_gc() -> None:
    """The previous instance was garbage-collected: lastState comes from the previous status,
    never one naming the current instance."""
    both = rt(exited("a", 1, restart=0, reason="Error"), exited("a", 0, restart=1))
    before = derive(pod("a", policy=ON_FAILURE), both)
    assert by_name(before)["a"]["lastState"]["terminated"]["containerID"] == "containerd://a-0"
    collected = rt(exited("a", 0, restart=1))
    after = by_name(derive(pod("a", policy=ON_FAILURE), collected, previous_status=before))["a"]
    assert after["lastState"] == by_name(before)["a"]["lastState"]
    assert after["state"]["terminated"]["containerID"] == "containerd://a-1"
    same = {"containerStatuses": [{**after, "lastState": after["state"]}]}
    alone = by_name(derive(pod("a", policy=ON_FAILURE), collected, previous_status=same))["a"]
    assert alone["lastState"] == {}


def test_terminated_and_last_state() -> None:
    r = rt(exited("a", 1, restart=0, reason="Error", message="boom"), running("a", restart=1))
    s = by_name(derive(pod("a"), r))["a"]
    last = s["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error" and last["message"] == "boom"
    assert last["finishedAt"] == iso(NOW - 1) and last["containerID"] == "containerd://a-0"
    assert "running" in s["state"]


def test_exited_zero_gets_completed_reason() -> None:
    s = by_name(derive(pod("a", policy=NEVER), rt(exited("a", 0))))["a"]
    assert s["state"]["terminated"]["reason"] == "Completed"
    assert not s["ready"] and not s["started"]


def test_crash_loop_waiting_moves_terminated_to_last_state() -> None:
    s = by_name(derive(pod("a"), rt(exited("a", 1)), waiting_reasons={"a": CRASH}))["a"]
    assert s["state"] == {"waiting": {"reason": CRASH.reason, "message": CRASH.message}}
    assert s["lastState"]["terminated"]["exitCode"] == 1


def test_waiting_reason_ignored_for_container_that_will_not_restart() -> None:
    s = by_name(derive(pod("a", policy=NEVER), rt(exited("a", 1)), waiting_reasons={"a": CRASH}))
    assert "terminated" in s["a"]["state"]


@pytest.mark.parametrize(
    "reason", ["ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"]
)
def test_worker_waiting_reasons_on_new_container(reason: str) -> None:
    s = by_name(derive(pod("a"), rt(), waiting_reasons={"a": Waiting(reason, "m")}))["a"]
    assert s["state"] == {"waiting": {"reason": reason, "message": "m"}}


def test_default_waiting_reasons() -> None:
    assert by_name(derive(pod("a"), rt(sandboxes=())))["a"]["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }
    st = derive(pod("a", init=("i1",)), rt(running("i1")))
    assert by_name(st)["a"]["state"]["waiting"]["reason"] == "PodInitializing"
    created = by_name(derive(pod("a"), rt(other("a", ContainerState.CREATED))))["a"]
    assert created["state"]["waiting"]["reason"] == "ContainerCreating"


def test_readiness_probe_gates_ready() -> None:
    p = pod(ctr("a", readiness_probe={"exec": {}}), "b")
    r = rt(running("a"), running("b"))
    assert not by_name(derive(p, r))["a"]["ready"]
    ready = derive(p, r, readiness={ContainerID("a-0"): True})
    assert by_name(ready)["a"]["ready"] and by_name(ready)["b"]["ready"]


def test_startup_probe_not_passed_means_not_started() -> None:
    probes = ProbeResults(not_started=frozenset({ContainerID("a-0")}))
    s = by_name(derive(pod("a"), rt(running("a")), probe_results=probes))["a"]
    assert not s["started"] and not s["ready"]


def test_container_statuses_sorted_by_name_init_in_spec_order() -> None:
    st = derive(pod("b", "a", init=("z", "y")), rt())
    assert [s["name"] for s in st["containerStatuses"]] == ["a", "b"]
    assert [s["name"] for s in st["initContainerStatuses"]] == ["z", "y"]


def test_completed_init_container_is_ready() -> None:
    st = derive(pod("a", init=("i1",)), rt(exited("i1", 0), running("a")))
    assert by_name(st, "initContainerStatuses")["i1"]["ready"]


# ---------------------------------------------------------------- phase


@pytest.mark.parametrize(
    ("policy", "containers", "phase"),
    [
        (ALWAYS, (), "Pending"),
        (ALWAYS, (running("a"),), "Pending"),  # b is still ContainerCreating
        (ALWAYS, (running("a"), running("b")), "Running"),
        (ALWAYS, (running("a"), exited("b", 1)), "Running"),
        (ALWAYS, (exited("a", 0), exited("b", 0)), "Running"),
        (ON_FAILURE, (exited("a", 0), exited("b", 0)), "Succeeded"),
        (ON_FAILURE, (exited("a", 0), exited("b", 1)), "Running"),
        (NEVER, (exited("a", 0), exited("b", 1)), "Failed"),
        (NEVER, (exited("a", 0), exited("b", 0)), "Succeeded"),
        (NEVER, (running("a"),), "Pending"),  # b has not been created yet
        (NEVER, (running("a"), exited("b", 1)), "Running"),
    ],
)
def test_phase_rules(policy: RestartPolicy, containers: tuple[Any, ...], phase: str) -> None:
    assert derive(pod("a", "b", policy=policy), rt(*containers))["phase"] == phase


def test_phase_terminal_pod_with_always() -> None:
    r = rt(exited("a", 0), exited("b", 1))
    assert derive(pod("a", "b"), r, pod_is_terminal=True)["phase"] == "Failed"
    ok = rt(exited("a", 0), exited("b", 0))
    assert derive(pod("a", "b"), ok, pod_is_terminal=True)["phase"] == "Succeeded"


def test_phase_crash_looping_container_is_running() -> None:
    st = derive(pod("a"), rt(exited("a", 1)), waiting_reasons={"a": CRASH})
    assert st["phase"] == "Running"


@pytest.mark.parametrize(
    ("policy", "init_state", "phase"),
    [
        (ALWAYS, (), "Pending"),
        (ALWAYS, (running("i1"),), "Pending"),
        (ALWAYS, (exited("i1", 1),), "Pending"),
        (NEVER, (exited("i1", 1),), "Failed"),
        (ON_FAILURE, (exited("i1", 0),), "Pending"),
    ],
)
def test_phase_with_init_containers(
    policy: RestartPolicy, init_state: tuple[Any, ...], phase: str
) -> None:
    assert derive(pod("a", init=("i1",), policy=policy), rt(*init_state))["phase"] == phase


def test_failing_init_holds_app_containers_in_pod_initializing() -> None:
    st = derive(pod("a", init=("i1", "i2")), rt(exited("i1", 1)), waiting_reasons={"i1": CRASH})
    assert st["phase"] == "Pending"
    assert by_name(st)["a"]["state"]["waiting"]["reason"] == "PodInitializing"
    i1 = by_name(st, "initContainerStatuses")["i1"]
    assert i1["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    c = conds(st)["Initialized"]
    assert c["status"] == "False" and c["reason"] == "ContainersNotInitialized"
    assert c["message"] == "containers with incomplete status: [i1 i2]"


def test_phase_with_sidecar() -> None:
    p = pod("a", init=(sidecar("s1"),), policy=NEVER)
    assert derive(p, rt(running("s1")))["phase"] == "Pending"
    assert derive(p, rt(running("s1"), running("a")))["phase"] == "Running"
    # a sidecar still running keeps the pod Running until the planner stops it
    assert derive(p, rt(running("s1"), exited("a", 0)))["phase"] == "Running"
    assert derive(p, rt(exited("s1", 1), exited("a", 0)))["phase"] == "Succeeded"
    not_started = ProbeResults(not_started=frozenset({ContainerID("s1-0")}))
    assert derive(p, rt(running("s1")), probe_results=not_started)["phase"] == "Pending"


def test_terminal_previous_phase_is_kept() -> None:
    st = derive(pod("a"), rt(running("a")), previous_status={"phase": "Failed"})
    assert st["phase"] == "Failed"


def test_failure_marks_failed_with_reason() -> None:
    fail = Waiting("DeadlineExceeded", "Pod was active on the node longer than the deadline")
    st = derive(pod("a"), rt(running("a")), failure=fail)
    assert st["phase"] == "Failed" and st["reason"] == "DeadlineExceeded"
    assert conds(st)["Ready"]["reason"] == "PodFailed"


# ---------------------------------------------------------------- conditions


def test_all_ready_conditions() -> None:
    c = conds(derive(pod("a", "b"), rt(running("a"), running("b"))))
    for t in (
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ):
        assert c[t]["status"] == "True", t
        assert "reason" not in c[t]


def test_unready_containers_message() -> None:
    p = pod(ctr("b", readiness_probe={}), ctr("a", readiness_probe={}), "c")
    c = conds(derive(p, rt(running("a"), running("b"), running("c"))))
    for t in ("Ready", "ContainersReady"):
        assert c[t]["status"] == "False"
        assert c[t]["reason"] == "ContainersNotReady"
        assert c[t]["message"] == "containers with unready status: [a b]"


def test_unready_sidecar_counts() -> None:
    p = pod("a", init=(sidecar("s1", readiness_probe={}),))
    c = conds(derive(p, rt(running("s1"), running("a"))))
    assert c["ContainersReady"]["message"] == "containers with unready status: [s1]"


def test_completed_pod_conditions() -> None:
    st = derive(pod("a", policy=NEVER), rt(exited("a", 0)))
    c = conds(st)
    assert st["phase"] == "Succeeded"
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "PodCompleted"
    assert c["ContainersReady"]["reason"] == "PodCompleted"


def test_sandbox_gone_not_ready_to_start() -> None:
    c = conds(derive(pod("a"), rt(sandboxes=(DEAD_SB,))))
    assert c["PodReadyToStartContainers"]["status"] == "False"
    assert conds(derive(pod("a"), rt(sandboxes=())))["PodReadyToStartContainers"]["status"] == (
        "False"
    )


def test_transition_times_kept_when_status_unchanged() -> None:
    prev = derive(pod("a"), rt(running("a")), now_iso=T0)
    again = derive(pod("a"), rt(running("a")), previous_status=prev, now_iso=T1)
    assert conds(again)["Ready"]["lastTransitionTime"] == T0
    flipped = derive(pod("a"), rt(exited("a", 1)), previous_status=prev, now_iso=T1)
    assert conds(flipped)["Ready"]["lastTransitionTime"] == T1
    assert conds(flipped)["Initialized"]["lastTransitionTime"] == T0


def test_pod_scheduled_and_foreign_conditions_kept() -> None:
    sched = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    gate = {"type": "x/ready", "status": "True"}
    st = derive(pod("a"), rt(running("a")), previous_status={"conditions": [sched, gate]})
    c = conds(st)
    assert c["PodScheduled"] == sched and c["x/ready"] == gate


def test_readiness_gates() -> None:
    p = pod("a", readiness_gates=("x/ready",))
    c = conds(derive(p, rt(running("a"))))
    assert c["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert c["Ready"]["message"] == (
        'corresponding condition of pod readiness gate "x/ready" does not exist.'
    )
    assert c["ContainersReady"]["status"] == "True"
    prev = {"conditions": [{"type": "x/ready", "status": "True"}]}
    assert conds(derive(p, rt(running("a")), previous_status=prev))["Ready"]["status"] == "True"


def test_gates_read_the_apiservers_conditions_not_the_nodes_stale_copy() -> None:
    # The node's last derived status still holds x/ready True; a controller since set it False.
    p = pod("a", readiness_gates=("x/ready",))
    node = derive(p, rt(running("a")), previous_status={"conditions": [_gate("True")]})
    assert conds(node)["Ready"]["status"] == "True"
    api = {"conditions": [*node["conditions"][:-1], _gate("False")]}
    prev = with_others_conditions(node, api)
    assert conds(prev)["x/ready"]["status"] == "False"
    assert conds(prev)["Ready"] == conds(node)["Ready"], "the node's own conditions stay"
    again = derive(p, rt(running("a")), previous_status=prev)
    assert conds(again)["Ready"]["status"] == "False"
    assert conds(again)["Ready"]["message"] == (
        'the status of pod readiness gate "x/ready" is not "True", but False'
    )


def test_others_conditions_come_from_the_apiserver_only() -> None:
    node = {"phase": "Running", "conditions": [_gate("True"), {"type": "Ready", "status": "True"}]}
    prev = with_others_conditions(node, {"conditions": [{"type": "Ready", "status": "False"}]})
    assert prev == {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}


def test_status_writes_never_carry_others_conditions() -> None:
    cs = [
        {"type": t, "status": "True"}
        for t in ("Ready", "x/ready", "PodScheduled", "DisruptionTarget", "Initialized")
    ]
    assert [c["type"] for c in written_conditions(cs)] == [
        "Ready",
        "PodScheduled",
        "DisruptionTarget",
        "Initialized",
    ]


def _gate(status: str) -> dict[str, Any]:
    return {"type": "x/ready", "status": status}


def test_initialized_stays_true_once_app_containers_exist() -> None:
    st = derive(pod("a", init=("i1",)), rt(running("a")))
    assert conds(st)["Initialized"]["status"] == "True"


# ---------------------------------------------------------------- IPs, startTime


def test_ips_and_start_time() -> None:
    st = derive(pod("a"), rt(running("a")), host_ips=("192.168.1.2", "fd00::2"))
    assert st["podIP"] == "10.0.0.5" and st["podIPs"] == [{"ip": "10.0.0.5"}]
    assert st["hostIP"] == "192.168.1.2"
    assert st["hostIPs"] == [{"ip": "192.168.1.2"}, {"ip": "fd00::2"}]
    assert st["startTime"] == T1
    kept = derive(pod("a"), rt(sandboxes=(DEAD_SB,)), previous_status=st, now_iso="later")
    assert kept["startTime"] == T1 and kept["podIP"] == "10.0.0.5"


def test_host_network_pod_uses_host_ips() -> None:
    st = derive(pod("a", host_network=True), rt(running("a")), host_ips=("192.168.1.2",))
    assert st["podIP"] == "192.168.1.2"


def test_no_ip_yet() -> None:
    assert "podIP" not in derive(pod("a"), rt(sandboxes=()))


# ---------------------------------------------------------------- QoS


def _res(req: dict[str, str] | None = None, lim: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if req is not None:
        out["requests"] = req
    if lim is not None:
        out["limits"] = lim
    return out


FULL = {"cpu": "500m", "memory": "128Mi"}


@pytest.mark.parametrize(
    ("resources", "init", "qos"),
    [
        ([{}], [], "BestEffort"),
        ([_res(req={"cpu": "0"})], [], "BestEffort"),
        ([_res(lim={"nvidia.com/gpu": "1"})], [], "BestEffort"),
        ([_res(lim=FULL)], [], "Guaranteed"),
        ([_res(req=FULL, lim=FULL)], [], "Guaranteed"),
        ([_res(req={"cpu": "0.5", "memory": "134217728"}, lim=FULL)], [], "Guaranteed"),
        ([_res(req={"cpu": "100m"}, lim=FULL)], [], "Burstable"),
        ([_res(req={"cpu": "1"})], [], "Burstable"),
        ([_res(lim={"cpu": "1"})], [], "Burstable"),
        ([_res(lim=FULL), {}], [], "Burstable"),
        ([_res(lim=FULL)], [{}], "Burstable"),
        ([_res(lim=FULL)], [_res(lim=FULL)], "Guaranteed"),
        ([{}], [_res(req={"memory": "1Gi"})], "Burstable"),
    ],
)
def test_qos_class(resources: list[dict[str, Any]], init: list[dict[str, Any]], qos: str) -> None:
    p = pod(
        *(ctr(f"c{i}", resources=r) for i, r in enumerate(resources)),
        init=tuple(ctr(f"i{i}", resources=r) for i, r in enumerate(init)),
    )
    assert qos_class(p) == qos
    assert derive(p, rt())["qosClass"] == qos


def test_init_rerun_after_sandbox_recreation_is_not_initialized() -> None:
    old, new = SandboxID("sb0"), SandboxID("sb1")
    sandboxes = (
        RuntimeSandbox(old, SandboxState.NOTREADY, created_at=1.0),
        RuntimeSandbox(new, SandboxState.READY, created_at=2.0, attempt=1, ip="10.0.0.6"),
    )
    r = rt(
        exited("i1", 0, sandbox_id=old),
        exited("a", 137, sandbox_id=old),
        running("i1", restart=1, sandbox_id=new),
        sandboxes=sandboxes,
    )
    st = derive(pod("a", init=("i1",)), r)
    assert conds(st)["Initialized"]["status"] == "False"
    assert st["podIP"] == "10.0.0.6"
    i1 = by_name(st, "initContainerStatuses")["i1"]
    assert i1["restartCount"] == 1 and i1["lastState"]["terminated"]["exitCode"] == 0
