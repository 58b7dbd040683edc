"""The pod planner: sandbox, init containers, sidecars, restart policy, back-off, termination."""

from __future__ import annotations

import dataclasses

import pytest

from kubelet.pods.backoff import BackOff
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
from kubelet.pods.plan import (
    CRASH_LOOP_BACK_OFF,
    KILL_LIVENESS,
    KILL_POD,
    KILL_SPEC_CHANGED,
    KILL_UNKNOWN,
    Halt,
    PodActions,
    compute_pod_actions,
    go_duration,
)
from tests.unit.kubelet.pods.fixtures import (
    DEAD_SB,
    NOW,
    SB,
    UID,
    ctr,
    exited,
    other,
    pod,
    rt,
    running,
    sidecar,
)

ALWAYS, ON_FAILURE, NEVER = RestartPolicy.ALWAYS, RestartPolicy.ON_FAILURE, RestartPolicy.NEVER


def plan(
    p: Pod,
    r: RuntimePod,
    *,
    now: float = NOW,
    backoff: BackOff | None = None,
    probes: ProbeResults | None = None,
    start_time: float | None = None,
) -> PodActions:
    return compute_pod_actions(
        p,
        r,
        now=now,
        backoff=backoff or BackOff(),
        probe_results=probes,
        start_time=start_time,
    )


# ---------------------------------------------------------------- sandbox


def test_fresh_pod_creates_sandbox_and_starts_all_containers() -> None:
    a = plan(pod("a", "b"), rt(sandboxes=()))
    assert a.create_sandbox and a.attempt == 0
    assert not a.kill_pod and a.sandbox_ids_to_kill == []
    assert a.containers_to_start == ["a", "b"]


def test_fresh_pod_with_init_starts_only_first_init() -> None:
    a = plan(pod("a", init=("i1", "i2")), rt(sandboxes=()))
    assert a.create_sandbox
    assert a.next_init_container_to_start == "i1"
    assert a.containers_to_start == []


def test_fresh_pod_with_leading_sidecar_starts_it_first() -> None:
    a = plan(pod("a", init=(sidecar("s1"), "i1")), rt(sandboxes=()))
    assert a.init_containers_to_start == ["s1"]
    assert a.next_init_container_to_start is None


def test_dead_sandbox_is_replaced_with_next_attempt() -> None:
    a = plan(pod("a"), rt(exited("a", 137), sandboxes=(DEAD_SB,)))
    assert a.kill_pod and a.create_sandbox
    assert a.attempt == 1
    assert a.sandbox_id_to_kill == SandboxID("sb1")
    assert a.containers_to_start == ["a"]


def test_dead_sandbox_running_containers_are_killed() -> None:
    a = plan(pod("a"), rt(running("a"), sandboxes=(DEAD_SB,)))
    assert list(a.containers_to_kill) == [ContainerID("a-0")]
    assert a.containers_to_start == ["a"]


def test_never_pod_that_ran_gets_no_new_sandbox() -> None:
    a = plan(pod("a", policy=NEVER), rt(exited("a", 1), sandboxes=(DEAD_SB,)))
    assert a.kill_pod and not a.create_sandbox
    assert a.containers_to_start == []


def test_never_pod_that_never_started_gets_a_new_sandbox() -> None:
    a = plan(pod("a", policy=NEVER), rt(sandboxes=(DEAD_SB,)))
    assert a.create_sandbox and a.attempt == 1
    assert a.containers_to_start == ["a"]


def test_on_failure_new_sandbox_skips_succeeded_containers() -> None:
    r = rt(exited("a", 0), exited("b", 1), sandboxes=(DEAD_SB,))
    a = plan(pod("a", "b", policy=ON_FAILURE), r)
    assert a.create_sandbox
    assert a.containers_to_start == ["b"]


def test_on_failure_all_succeeded_no_new_sandbox() -> None:
    a = plan(pod("a", policy=ON_FAILURE), rt(exited("a", 0), sandboxes=(DEAD_SB,)))
    assert not a.create_sandbox and a.kill_pod


def test_new_sandbox_reruns_init_containers() -> None:
    r = rt(exited("i1", 0), exited("a", 1), sandboxes=(DEAD_SB,))
    a = plan(pod("a", init=("i1",)), r)
    assert a.create_sandbox
    assert a.next_init_container_to_start == "i1"
    assert a.containers_to_start == []


@pytest.mark.parametrize(
    ("host_network", "ip", "new"),
    [(False, "", True), (False, None, False), (False, "10.0.0.9", False), (True, "", False)],
)
def test_sandbox_without_ip(host_network: bool, ip: str | None, new: bool) -> None:
    sb = RuntimeSandbox(SandboxID("sb1"), SandboxState.READY, created_at=1.0, ip=ip)
    a = plan(pod("a", host_network=host_network), rt(running("a"), sandboxes=(sb,)))
    assert a.create_sandbox is new


def test_two_ready_sandboxes_replace_both() -> None:
    sb2 = RuntimeSandbox(SandboxID("sb2"), SandboxState.READY, created_at=20.0, attempt=1, ip="x")
    a = plan(pod("a"), rt(running("a"), sandboxes=(SB, sb2)))
    assert a.create_sandbox and a.attempt == 2
    assert set(a.sandbox_ids_to_kill) == {SandboxID("sb1"), SandboxID("sb2")}


def test_steady_state_is_noop() -> None:
    a = plan(pod("a", "b"), rt(running("a"), running("b")))
    assert a.is_noop
    assert a.describe() == "noop"
    assert a.attempt == 0


# ---------------------------------------------------------------- restart policy matrix


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        (ALWAYS, 0, True),
        (ALWAYS, 1, True),
        (ON_FAILURE, 0, False),
        (ON_FAILURE, 1, True),
        (NEVER, 0, False),
        (NEVER, 1, False),
    ],
)
def test_restart_policy_matrix(policy: RestartPolicy, code: int, restart: bool) -> None:
    a = plan(pod("a", "b", policy=policy), rt(exited("a", code), running("b")))
    assert (a.containers_to_start == ["a"]) is restart
    assert not a.kill_pod


@pytest.mark.parametrize(
    ("policy", "code", "finished"),
    [(ALWAYS, 0, False), (ON_FAILURE, 0, True), (ON_FAILURE, 1, False), (NEVER, 1, True)],
)
def test_single_container_pod_finishes(policy: RestartPolicy, code: int, finished: bool) -> None:
    a = plan(pod("a", policy=policy), rt(exited("a", code)))
    assert a.kill_pod is finished
    if finished:
        assert a.sandbox_ids_to_kill == [SandboxID("sb1")]
        assert a.containers_to_start == []


def test_restart_uses_backoff_step_with_finish_time() -> None:
    a = plan(pod("a"), rt(exited("a", 1, finished=990.0)))
    assert a.containers_to_start == ["a"]
    step = a.backoff_steps["a"]
    assert step.key == (UID, "a") and step.since == 990.0


def test_created_container_is_started_again() -> None:
    a = plan(pod("a"), rt(other("a", ContainerState.CREATED)))
    assert a.containers_to_start == ["a"]
    assert a.containers_to_kill == {}


def test_unknown_container_is_killed_then_started() -> None:
    a = plan(pod("a", policy=NEVER), rt(other("a", ContainerState.UNKNOWN)))
    assert a.containers_to_kill[ContainerID("a-0")].reason == KILL_UNKNOWN
    assert a.containers_to_start == ["a"]


def test_missing_container_is_started() -> None:
    a = plan(pod("a", "b"), rt(running("a")))
    assert a.containers_to_start == ["b"]


# ---------------------------------------------------------------- spec hash and probes


def test_hash_change_kills_and_restarts_even_under_never() -> None:
    a = plan(pod("a", policy=NEVER), rt(running("a", hash="stale")))
    kill = a.containers_to_kill[ContainerID("a-0")]
    assert kill.reason == KILL_SPEC_CHANGED
    assert kill.message == "Container a definition changed, will be restarted"
    assert a.containers_to_start == ["a"]
    assert "a" not in a.backoff_steps


def test_matching_hash_keeps_container() -> None:
    p = pod("a")
    a = plan(p, rt(running("a", hash=p.containers[0].hash)))
    assert a.is_noop


def test_liveness_failure_restarts() -> None:
    probes = ProbeResults(liveness_failed=frozenset({ContainerID("a-0")}))
    a = plan(pod("a"), rt(running("a")), probes=probes)
    kill = a.containers_to_kill[ContainerID("a-0")]
    assert kill.reason == KILL_LIVENESS
    assert kill.message == "Container a failed liveness probe, will be restarted"
    assert a.containers_to_start == ["a"]


def test_liveness_failure_under_never_kills_without_restart() -> None:
    probes = ProbeResults(liveness_failed=frozenset({ContainerID("a-0")}))
    a = plan(pod("a", policy=NEVER), rt(running("a")), probes=probes)
    assert a.containers_to_kill[ContainerID("a-0")].reason == KILL_LIVENESS
    assert a.containers_to_start == []
    assert a.kill_pod  # nothing else runs: the pod has finished


# ---------------------------------------------------------------- init containers


def test_running_init_container_holds_everything() -> None:
    a = plan(pod("a", init=("i1", "i2")), rt(running("i1")))
    assert a.is_noop


def test_init_containers_run_in_order() -> None:
    p = pod("a", init=("i1", "i2"))
    assert plan(p, rt(exited("i1", 0))).next_init_container_to_start == "i2"
    done = plan(p, rt(exited("i1", 0), exited("i2", 0)))
    assert done.next_init_container_to_start is None
    assert done.containers_to_start == ["a"]


@pytest.mark.parametrize("policy", [ALWAYS, ON_FAILURE])
def test_failed_init_container_is_retried(policy: RestartPolicy) -> None:
    a = plan(pod("a", init=("i1", "i2"), policy=policy), rt(exited("i1", 1)))
    assert a.next_init_container_to_start == "i1"
    assert a.containers_to_start == []
    assert not a.pod_failed


def test_failed_init_container_under_never_fails_pod() -> None:
    a = plan(pod("a", init=("i1",), policy=NEVER), rt(exited("i1", 2)))
    assert a.pod_failed and a.kill_pod
    assert a.pod_failed_message == "init container i1 exited with code 2"
    assert a.next_init_container_to_start is None and a.containers_to_start == []


def test_pruned_earlier_init_record_counts_as_done() -> None:
    a = plan(pod("a", init=("i1", "i2")), rt(exited("i2", 0)))
    assert a.containers_to_start == ["a"]


def test_init_ignored_once_regular_container_exists() -> None:
    a = plan(pod("a", init=("i1",)), rt(running("a")))
    assert a.is_noop


def test_init_in_backoff_waits() -> None:
    bo = BackOff()
    bo.next((UID, "i1"), NOW - 30)
    a = plan(pod("a", init=("i1",)), rt(exited("i1", 1, finished=NOW - 2)), backoff=bo)
    assert a.next_init_container_to_start is None
    assert a.waiting["i1"].reason == CRASH_LOOP_BACK_OFF


# ---------------------------------------------------------------- sidecars


def test_sidecar_started_then_next_init_container() -> None:
    p = pod("a", init=(sidecar("s1"), "i1"))
    assert plan(p, rt(other("s1", ContainerState.CREATED))).is_noop
    a = plan(p, rt(running("s1")))
    assert a.next_init_container_to_start == "i1"


def test_sidecars_started_in_order() -> None:
    p = pod("a", init=(sidecar("s1"), sidecar("s2")))
    assert plan(p, rt()).init_containers_to_start == ["s1"]
    assert plan(p, rt(running("s1"))).init_containers_to_start == ["s2"]
    a = plan(p, rt(running("s1"), running("s2")))
    assert a.init_containers_to_start == [] and a.containers_to_start == ["a"]


def test_sidecar_not_started_until_startup_probe_passes() -> None:
    p = pod("a", init=(sidecar("s1"), "i1"))
    probes = ProbeResults(not_started=frozenset({ContainerID("s1-0")}))
    assert plan(p, rt(running("s1")), probes=probes).is_noop


@pytest.mark.parametrize("policy", [ALWAYS, ON_FAILURE, NEVER])
def test_exited_sidecar_restarts_regardless_of_policy(policy: RestartPolicy) -> None:
    p = pod("a", init=(sidecar("s1"),), policy=policy)
    a = plan(p, rt(exited("s1", 0), running("a")))
    assert a.init_containers_to_start == ["s1"]
    assert a.containers_to_start == []
    assert not a.kill_pod


def test_sidecar_liveness_failure_restarts_it() -> None:
    probes = ProbeResults(liveness_failed=frozenset({ContainerID("s1-0")}))
    p = pod("a", init=(sidecar("s1"),))
    a = plan(p, rt(running("s1"), running("a")), probes=probes)
    assert a.containers_to_kill[ContainerID("s1-0")].reason == KILL_LIVENESS
    assert a.init_containers_to_start == ["s1"]


def test_sidecar_crash_during_init_blocks_next() -> None:
    p = pod("a", init=(sidecar("s1"), "i1"))
    a = plan(p, rt(exited("s1", 1)))
    assert a.init_containers_to_start == ["s1"]
    assert a.next_init_container_to_start is None


def test_finished_regular_containers_stop_sidecars_last() -> None:
    p = pod("a", init=(sidecar("s1"), sidecar("s2")), policy=ON_FAILURE)
    r = rt(running("s1"), running("s2"), exited("a", 0))
    a = plan(p, r)
    assert a.kill_pod
    assert a.kill_stages == [[ContainerID("s2-0")], [ContainerID("s1-0")]]
    assert a.sandbox_ids_to_kill == [SandboxID("sb1")]


# ---------------------------------------------------------------- back-off


def test_crash_loop_back_off_message() -> None:
    bo = BackOff()
    bo.next((UID, "a"), NOW - 100)
    bo.next((UID, "a"), NOW - 50)  # now 20 s
    a = plan(pod("a", "b"), rt(exited("a", 1, finished=NOW - 5), running("b")), backoff=bo)
    assert a.containers_to_start == []
    assert a.waiting["a"].reason == CRASH_LOOP_BACK_OFF
    assert a.waiting["a"].message == (
        "back-off 20s restarting failed container=a pod=default/web(uid-1)"
    )
    assert not a.kill_pod


def test_backoff_wait_keeps_pod_alive_when_it_is_the_only_container() -> None:
    bo = BackOff()
    bo.next((UID, "a"), NOW - 20)
    a = plan(pod("a"), rt(exited("a", 1, finished=NOW - 2)), backoff=bo)
    assert not a.kill_pod and a.sandbox_ids_to_kill == []
    assert "a" in a.waiting


def test_crash_loop_on_fake_clock_doubles_to_cap() -> None:
    """Crash every time it starts; record what delay each restart waited for."""
    bo = BackOff()
    p = pod("a")
    now, waits = 0.0, []
    for restart in range(12):
        finished = now
        r = rt(exited("a", 1, restart=restart, finished=finished))
        while True:
            a = plan(p, r, now=now, backoff=bo)
            if a.containers_to_start:
                break
            now += 1.0
        waits.append(now - finished)
        a.record_backoff("a", bo)
        now += 1.0  # runs 1 s, then crashes
    assert waits[:7] == [0, 10, 20, 40, 80, 160, 300]
    assert waits[7:] == [300] * 5


def test_backoff_resets_after_ten_quiet_minutes() -> None:
    bo = BackOff()
    key = (UID, "a")
    for t in (0.0, 1.0, 2.0):
        bo.next(key, t)
    assert bo.get(key) == 40
    r = rt(exited("a", 1, finished=700.0))
    a = plan(pod("a"), r, now=700.5, backoff=bo)
    assert a.containers_to_start == ["a"]
    a.record_backoff("a", bo)
    assert bo.get(key) == 10


def test_go_duration() -> None:
    assert [go_duration(s) for s in (10, 20, 80, 300, 3600)] == [
        "10s",
        "20s",
        "1m20s",
        "5m0s",
        "1h0m0s",
    ]


# ---------------------------------------------------------------- termination


def test_deleted_pod_stops_regular_then_sidecars_reverse_then_sandbox() -> None:
    p = pod(
        "a",
        "b",
        init=(sidecar("s1"), "i1", sidecar("s2")),
        deletion_timestamp="2026-01-01T00:00:00Z",
        deletion_grace_period_seconds=10,
        termination_grace_period_seconds=30,
    )
    r = rt(running("s1"), exited("i1", 0), running("s2"), running("a"), running("b"))
    a = plan(p, r)
    assert a.kill_pod and not a.create_sandbox
    assert a.containers_to_start == [] and a.init_containers_to_start == []
    assert a.kill_stages == [
        [ContainerID("a-0"), ContainerID("b-0")],
        [ContainerID("s2-0")],
        [ContainerID("s1-0")],
    ]
    assert all(k.reason == KILL_POD for k in a.containers_to_kill.values())
    assert a.sandbox_ids_to_kill == [SandboxID("sb1")]
    assert a.grace_period_seconds == 10


def test_deleted_pod_grace_is_min_of_deletion_and_spec() -> None:
    p = pod("a", deletion_timestamp="t", deletion_grace_period_seconds=60)
    assert plan(p, rt(running("a"))).grace_period_seconds == 30


def test_deleted_pod_fully_stopped_is_noop() -> None:
    p = pod("a", deletion_timestamp="t")
    a = plan(p, rt(exited("a", 0), sandboxes=(DEAD_SB,)))
    assert a.is_noop and a.kill_pod


def test_deleted_pod_never_starts_anything() -> None:
    p = pod("a", deletion_timestamp="t")
    a = plan(p, rt(sandboxes=()))
    assert not a.create_sandbox and a.containers_to_start == []


def test_active_deadline_fails_and_kills() -> None:
    p = pod("a", active_deadline_seconds=60)
    assert plan(p, rt(running("a")), start_time=NOW - 59).is_noop
    a = plan(p, rt(running("a")), start_time=NOW - 60)
    assert a.pod_failed and a.pod_failed_reason == "DeadlineExceeded"
    assert list(a.containers_to_kill) == [ContainerID("a-0")]


def test_halted_pod_fails_and_is_torn_down_within_the_halt_grace() -> None:
    p = pod("a", "b", init=(sidecar("s"),), termination_grace_period_seconds=30)
    r = rt(running("s"), running("a"), running("b"))
    a = compute_pod_actions(
        p, r, now=NOW, backoff=BackOff(), halt=Halt(5, Waiting("Evicted", "low on memory"))
    )
    assert a.kill_pod and not a.create_sandbox and a.containers_to_start == []
    assert a.kill_stages == [[ContainerID("a-0"), ContainerID("b-0")], [ContainerID("s-0")]]
    assert a.sandbox_ids_to_kill == [SandboxID("sb1")]
    assert (a.pod_failed, a.pod_failed_reason, a.pod_failed_message) == (
        True,
        "Evicted",
        "low on memory",
    )
    assert a.grace_period_seconds == 5


def test_halt_grace_only_shrinks_and_a_halt_without_failure_does_not_fail() -> None:
    p = pod("a", deletion_timestamp="t", deletion_grace_period_seconds=10)
    a = compute_pod_actions(p, rt(running("a")), now=NOW, backoff=BackOff(), halt=Halt(60))
    assert a.kill_pod and a.grace_period_seconds == 10 and not a.pod_failed


def test_actions_cannot_be_changed_after_planning() -> None:
    a = plan(pod("a"), rt(sandboxes=()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.pod_failed = True  # type: ignore[misc]


def test_describe_mentions_the_actions() -> None:
    a = plan(pod("a", init=("i1",)), rt(sandboxes=()))
    assert a.describe() == "create_sandbox(attempt=0) start_init=i1"
    b = plan(pod("a"), rt(running("a", hash="x")))
    assert b.describe() == f"kill=[a({KILL_SPEC_CHANGED})] start=[a]"


def test_container_not_in_spec_is_killed_on_termination() -> None:
    p = pod(ctr("a"), deletion_timestamp="t")
    a = plan(p, rt(running("a"), running("old")))
    assert a.kill_stages == [[ContainerID("a-0"), ContainerID("old-0")]]


def test_after_sandbox_recreation_init_reruns_in_new_sandbox() -> None:
    old, new = SandboxID("sb0"), SandboxID("sb1")
    sandboxes = (
        RuntimeSandbox(old, SandboxState.NOTREADY, created_at=1.0),
        RuntimeSandbox(new, SandboxState.READY, created_at=2.0, attempt=1, ip="10.0.0.6"),
    )
    p = pod("a", init=("i1", "i2"))
    r = rt(
        exited("i1", 0, sandbox_id=old),
        exited("i2", 0, sandbox_id=old),
        exited("a", 137, sandbox_id=old),
        exited("i1", 0, restart=1, sandbox_id=new),
        sandboxes=sandboxes,
    )
    a = plan(p, r)
    assert not a.create_sandbox and a.attempt == 1
    assert a.next_init_container_to_start == "i2"
    assert a.containers_to_start == []


# ---------------------------------------------------------------- probe grace period (rule 10)

LIVE_FAIL = ProbeResults(liveness_failed=frozenset({ContainerID("a-0")}))
START_FAIL = ProbeResults(startup_failed=frozenset({ContainerID("a-0")}))
PROBE = {"exec": {"command": ["false"]}}


@pytest.mark.parametrize(
    ("probes", "kw", "grace"),
    [
        (LIVE_FAIL, {"liveness_probe": {**PROBE, "terminationGracePeriodSeconds": 5}}, 5),
        (START_FAIL, {"startup_probe": {**PROBE, "terminationGracePeriodSeconds": 7}}, 7),
        (LIVE_FAIL, {"liveness_probe": PROBE}, None),
        # the startup probe's grace does not apply to a liveness kill
        (
            LIVE_FAIL,
            {"liveness_probe": PROBE, "startup_probe": {"terminationGracePeriodSeconds": 9}},
            None,
        ),
    ],
)
def test_probe_kill_uses_probe_grace_period(
    probes: ProbeResults, kw: dict[str, object], grace: int | None
) -> None:
    p = pod(ctr("a", **kw), termination_grace_period_seconds=60)
    acts = plan(p, rt(running("a")), probes=probes)
    kill = acts.containers_to_kill[ContainerID("a-0")]
    assert kill.grace_seconds == grace
    assert acts.grace_period_seconds == 60


def test_probe_grace_period_not_used_for_deletion_or_other_kills() -> None:
    live = {"liveness_probe": {**PROBE, "terminationGracePeriodSeconds": 5}}
    deleted = pod(
        ctr("a", **live), deletion_timestamp="2026-11-23T12:00:00Z", deletion_grace_period_seconds=1
    )
    kill = plan(deleted, rt(running("a")), probes=LIVE_FAIL).containers_to_kill
    assert kill[ContainerID("a-0")].grace_seconds is None
    changed = plan(pod(ctr("a", **live)), rt(running("a", hash="old")))
    assert changed.containers_to_kill[ContainerID("a-0")].grace_seconds is None
