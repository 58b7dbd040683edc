"""Ephemeral containers: parsing, planning (start once, never restart), status, PID target."""

from __future__ import annotations

from typing import Any

import pytest

from cri import api
from kubelet.pods import ephemeral
from kubelet.pods.backoff import BackOff
from kubelet.pods.decode import pod_from_api
from kubelet.pods.model import Container, ContainerState, Pod, PodSpecError, RestartPolicy, Waiting
from kubelet.pods.plan import PodActions, compute_pod_actions
from kubelet.pods.podstatus import derive_pod_status, iso
from tests.unit.kubelet.pods.fixtures import DEAD_SB, NOW, exited, other, pod, rt, running

NEVER = RestartPolicy.NEVER
PULL_ERROR = Waiting("ErrImagePull", "no such image")


def debug_pod(*names: str, target: str = "", **kw: Any) -> Pod:
    base = pod("a", **kw)
    eph = tuple(
        Container(name=n, image="busybox:1.35", target_container_name=target) for n in names
    )
    return Pod(**{**base.__dict__, "ephemeral_containers": eph})


def plan(p: Pod, r: Any) -> PodActions:
    return compute_pod_actions(p, r, now=NOW, backoff=BackOff())


def api_pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"containers": [{"name": "a", "image": "img:1"}], **spec},
    }


# ---------------------------------------------------------------- model


def test_parse_keeps_target_and_drops_probes_ports_resources() -> None:
    p = pod_from_api(
        api_pod(
            ephemeralContainers=[
                {
                    "name": "debugger",
                    "image": "busybox:1.35",
                    "targetContainerName": "a",
                    "ports": [{"containerPort": 80}],
                    "readinessProbe": {"exec": {"command": ["true"]}},
                    "resources": {"limits": {"cpu": "1"}},
                }
            ]
        )
    )
    (e,) = p.ephemeral_containers
    assert (e.name, e.target_container_name) == ("debugger", "a")
    assert e.ports == () and e.readiness_probe is None and dict(e.resources) == {}
    assert p.container("debugger") is e


def test_parse_refuses_ephemeral_name_clash() -> None:
    with pytest.raises(PodSpecError, match="duplicate container name 'a'"):
        pod_from_api(api_pod(ephemeralContainers=[{"name": "a", "image": "busybox"}]))


# ---------------------------------------------------------------- plan


def test_new_ephemeral_container_starts_in_running_pod() -> None:
    acts = plan(debug_pod("dbg"), rt(running("a")))
    assert acts.ephemeral_containers_to_start == ["dbg"]
    assert acts.containers_to_start == [] and not acts.kill_pod
    assert "start_ephemeral=[dbg]" in acts.describe()


@pytest.mark.parametrize("state", ["running", "exited0", "exited1"])
def test_ephemeral_container_is_never_restarted(state: str) -> None:
    inst = {
        "running": running("dbg"),
        "exited0": exited("dbg", 0),
        "exited1": exited("dbg", 1),
    }[state]
    acts = plan(debug_pod("dbg"), rt(running("a"), inst))
    assert acts.is_noop


def test_ephemeral_container_from_an_old_sandbox_is_not_started_again() -> None:
    old = exited("dbg", 0, sandbox_id="old-sb")
    acts = plan(debug_pod("dbg"), rt(running("a"), old))
    assert acts.ephemeral_containers_to_start == []


def test_ephemeral_container_starts_before_initialization_is_done() -> None:
    p = debug_pod("dbg", init=("init1",))
    acts = plan(p, rt(running("init1")))
    assert acts.ephemeral_containers_to_start == ["dbg"]


def test_ephemeral_container_not_started_in_terminating_pod() -> None:
    p = debug_pod("dbg", deletion_timestamp="2026-11-23T12:00:00Z")
    acts = plan(p, rt(running("a")))
    assert acts.kill_pod and acts.ephemeral_containers_to_start == []


def test_ephemeral_container_not_started_in_finished_pod_and_killed_with_it() -> None:
    acts = plan(debug_pod("dbg", "dbg2", policy=NEVER), rt(exited("a", 0), running("dbg")))
    assert acts.kill_pod and acts.ephemeral_containers_to_start == []
    assert "dbg-0" in acts.containers_to_kill


def test_running_ephemeral_container_does_not_keep_a_finished_pod_alive() -> None:
    acts = plan(debug_pod("dbg", policy=NEVER), rt(exited("a", 1), running("dbg")))
    assert acts.kill_pod


def test_ephemeral_container_not_started_with_a_new_sandbox() -> None:
    acts = plan(debug_pod("dbg"), rt(sandboxes=(DEAD_SB,)))
    assert acts.create_sandbox and acts.ephemeral_containers_to_start == []
    assert acts.containers_to_start == ["a"]


# ---------------------------------------------------------------- status


def status(p: Pod, r: Any, **kw: Any) -> dict[str, Any]:
    return derive_pod_status(p, r, previous_status=None, now_iso="2026-11-23T12:00:00Z", **kw)


def test_ephemeral_statuses_sorted_never_ready_without_started() -> None:
    s = status(debug_pod("zz", "dbg"), rt(running("a"), running("dbg"), exited("zz", 3)))
    eph = s["ephemeralContainerStatuses"]
    assert [e["name"] for e in eph] == ["dbg", "zz"]
    assert eph[0]["state"] == {"running": {"startedAt": iso(NOW - 100)}}
    assert eph[1]["state"]["terminated"]["exitCode"] == 3
    assert all(e["ready"] is False and "started" not in e for e in eph)
    assert {c["type"]: c["status"] for c in s["conditions"]}["Ready"] == "True"
    assert s["phase"] == "Running"


def test_pending_ephemeral_container_is_creating_and_takes_waiting_reason() -> None:
    s = status(debug_pod("dbg"), rt(running("a")))
    assert s["ephemeralContainerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }
    w = {"dbg": PULL_ERROR}
    s = status(debug_pod("dbg"), rt(running("a")), waiting_reasons=w)
    assert s["ephemeralContainerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"


def test_exited_ephemeral_container_never_shows_a_waiting_reason() -> None:
    w = {"dbg": PULL_ERROR}
    s = status(debug_pod("dbg"), rt(running("a"), exited("dbg", 0)), waiting_reasons=w)
    assert "terminated" in s["ephemeralContainerStatuses"][0]["state"]


def test_no_ephemeral_statuses_without_ephemeral_containers() -> None:
    assert "ephemeralContainerStatuses" not in status(pod("a"), rt(running("a")))


# ---------------------------------------------------------------- target PID namespace


def test_target_must_be_running() -> None:
    r = rt(running("a", cid="c-a"), other("b", ContainerState.CREATED))
    assert ephemeral.target_container_id(r, "a") == "c-a"
    assert ephemeral.target_container_id(r, "b") is None
    assert ephemeral.target_container_id(r, "nope") is None
    assert ephemeral.target_error("nope") == "unable to find target container nope"


def _config(pid: api.NamespaceMode.ValueType) -> api.ContainerConfig:
    ns = api.NamespaceOption(network=api.POD, pid=pid, ipc=api.POD)
    sc = api.LinuxContainerSecurityContext(namespace_options=ns)
    return api.ContainerConfig(linux=api.LinuxContainerConfig(security_context=sc))


def test_join_target_pid_only_from_a_container_pid_namespace() -> None:
    c = _config(api.CONTAINER)
    ephemeral.join_target_pid(c, "c-a")
    ns = c.linux.security_context.namespace_options
    assert (ns.pid, ns.target_id) == (api.TARGET, "c-a")
    shared = _config(api.POD)
    ephemeral.join_target_pid(shared, "c-a")
    ns = shared.linux.security_context.namespace_options
    assert (ns.pid, ns.target_id) == (api.POD, "")
    assert ephemeral.field_path("dbg") == "spec.ephemeralContainers{dbg}"
