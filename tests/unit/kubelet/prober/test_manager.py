"""The probe manager: workers per running container, cached results, wakes and events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kubelet.pods.decode import pod_from_api
from kubelet.pods.model import (
    ContainerID,
    ContainerState,
    Pod,
    PodUID,
    RuntimeContainer,
    RuntimePod,
    RuntimeSandbox,
    SandboxID,
    SandboxState,
)
from kubelet.prober.manager import ProbeManager
from kubelet.prober.results import Result
from kubelet.prober.spec import Kind

from .fakes import Events, FakeClock, ScriptedRunner, settle

UID = PodUID("u1")


@dataclass
class Rig:
    clock: FakeClock
    runner: ScriptedRunner
    events: Events
    manager: ProbeManager
    wakes: list[PodUID] = field(default_factory=list)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock()
    runner = ScriptedRunner(clock)
    events = Events()
    wakes: list[PodUID] = []
    m = ProbeManager(
        runtime=None,  # type: ignore[arg-type]
        recorder=events,
        wake=wakes.append,
        clock=clock,
        runner=runner,
    )
    yield Rig(clock, runner, events, m, wakes)
    await m.close()


def _pod(deleted: bool = False, **probes: Any) -> Pod:
    c: dict[str, Any] = {"name": "c", "image": "busybox", **probes}
    meta: dict[str, Any] = {"name": "p", "namespace": "ns", "uid": UID}
    if deleted:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    return pod_from_api({"metadata": meta, "spec": {"containers": [c]}})


def _rt(cid: str = "c1", state: ContainerState = ContainerState.RUNNING) -> RuntimePod:
    return RuntimePod(
        uid=UID,
        sandboxes=(RuntimeSandbox(SandboxID("s"), SandboxState.READY, ip="10.0.0.9"),),
        containers=(
            RuntimeContainer(ContainerID(cid), "c", state, started_at=1000.0, restart_count=0),
        ),
    )


EXEC = {"exec": {"command": ["check"]}, "periodSeconds": 1}


async def test_readiness_starts_false_then_follows_the_probe(rig: Rig) -> None:
    pod = _pod(readinessProbe={**EXEC, "initialDelaySeconds": 3})
    rig.manager.sync(pod, _rt())
    assert rig.manager.results(UID)[1] == {"c1": False}
    await rig.clock.advance(2)
    assert rig.runner.calls == []
    await rig.clock.advance(1.5)
    assert rig.manager.results(UID)[1] == {"c1": True}
    assert rig.wakes == [UID]
    assert rig.runner.calls[0][2].pod_ip == "10.0.0.9"


async def test_container_without_readiness_probe_is_ready_when_running(rig: Rig) -> None:
    rig.manager.sync(_pod(), _rt())
    assert rig.manager.results(UID)[1] == {"c1": True}


async def test_liveness_failure_wakes_and_records_events(rig: Rig) -> None:
    rig.runner.set(Kind.LIVENESS, Result.FAILURE)
    rig.manager.sync(_pod(livenessProbe={**EXEC, "failureThreshold": 2}), _rt())
    await rig.clock.advance(0.5)
    assert not rig.manager.results(UID)[0].liveness_failed
    await rig.clock.advance(1)
    assert rig.manager.results(UID)[0].liveness_failed == {"c1"}
    assert rig.wakes == [UID]
    assert rig.events.messages() == ["Unhealthy: Liveness probe failed: Liveness says no"] * 2
    ev = rig.events.items[0]
    assert (ev.namespace, ev.pod, ev.uid, ev.type) == ("ns", "p", UID, "Warning")
    assert ev.field_path == "spec.containers{c}"
    # the replacement container gets a fresh worker; the old one's result is dropped
    rig.runner.set(Kind.LIVENESS, Result.SUCCESS)
    rig.manager.sync(_pod(livenessProbe={**EXEC, "failureThreshold": 2}), _rt("c2"))
    assert not rig.manager.results(UID)[0].liveness_failed


async def test_startup_gates_liveness_and_readiness(rig: Rig) -> None:
    rig.runner.set(Kind.STARTUP, Result.FAILURE, Result.FAILURE, Result.SUCCESS)
    pod = _pod(
        startupProbe={**EXEC, "failureThreshold": 10},
        livenessProbe={**EXEC, "periodSeconds": 10},
        readinessProbe={**EXEC, "periodSeconds": 10},
    )
    rig.manager.sync(pod, _rt())
    results, ready = rig.manager.results(UID)
    assert results.not_started == {"c1"}
    assert ready == {"c1": False}
    await rig.clock.advance(1.5)
    assert rig.runner.times(Kind.LIVENESS) == rig.runner.times(Kind.READINESS) == []
    await rig.clock.advance(1)  # t=2: the startup probe succeeds, the others run at once
    results, ready = rig.manager.results(UID)
    assert not results.not_started
    assert ready == {"c1": True}
    assert rig.runner.times(Kind.LIVENESS) == [1002.0]
    assert rig.runner.times(Kind.READINESS) == [1002.0]


async def test_startup_failure(rig: Rig) -> None:
    rig.runner.set(Kind.STARTUP, Result.FAILURE)
    rig.manager.sync(_pod(startupProbe={**EXEC, "failureThreshold": 2}), _rt())
    await rig.clock.advance(3)
    results, _ = rig.manager.results(UID)
    assert results.startup_failed == {"c1"}
    assert results.not_started == {"c1"}
    assert "Unhealthy: Startup probe failed: Startup says no" in rig.events.messages()


async def test_no_probes_for_a_terminating_pod(rig: Rig) -> None:
    rig.runner.set(Kind.LIVENESS, Result.FAILURE)
    probes: dict[str, Any] = {
        "livenessProbe": {**EXEC, "failureThreshold": 1},
        "readinessProbe": EXEC,
    }
    rig.manager.sync(_pod(**probes), _rt())
    await rig.clock.advance(0.5)
    assert rig.manager.results(UID)[0].liveness_failed == {"c1"}
    calls = len(rig.runner.calls)
    rig.manager.sync(_pod(deleted=True, **probes), _rt())
    assert not rig.manager.results(UID)[0].liveness_failed
    await rig.clock.advance(5)
    assert len(rig.runner.calls) == calls


async def test_exited_container_and_forget(rig: Rig) -> None:
    pod = _pod(readinessProbe=EXEC)
    rig.manager.sync(pod, _rt())
    await rig.clock.advance(0.5)
    rig.manager.sync(pod, _rt(state=ContainerState.EXITED))
    assert rig.manager.results(UID)[1] == {}
    calls = len(rig.runner.calls)
    await rig.clock.advance(3)
    assert len(rig.runner.calls) == calls
    rig.manager.sync(pod, _rt("c2"))
    rig.manager.forget(UID)
    await settle()
    assert rig.manager.results(UID) == (rig.manager.results("other")[0], {})


async def test_network_probe_waits_for_the_pod_ip(rig: Rig) -> None:
    pod = _pod(readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 1})
    no_ip = RuntimePod(
        uid=UID,
        sandboxes=(RuntimeSandbox(SandboxID("s"), SandboxState.READY, ip=None),),
        containers=_rt().containers,
    )
    rig.manager.sync(pod, no_ip)
    await rig.clock.advance(2)
    assert rig.runner.calls == []
    assert rig.manager.results(UID)[1] == {"c1": False}
    rig.manager.sync(pod, _rt())
    await rig.clock.advance(0.1)
    assert len(rig.runner.calls) == 1
