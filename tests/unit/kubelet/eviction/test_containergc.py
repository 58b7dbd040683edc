"""Container GC planning as upstream's policy: the newest dead container per (pod, name) stays
for kept pods, everything of pods not kept goes once the sources are ready, minimum age, the
node-wide cap, and dead sandboxes (not ready, empty, of a gone pod or not the newest)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cri import api
from kubelet.eviction.containergc import Plan, Policy, plan

S = 1_000_000_000
NOW = 1000 * S


def ctr(
    cid: str, uid: str, name: str, attempt: int, *, running: bool = False, sb: str = ""
) -> api.Container:
    return api.Container(
        id=cid,
        pod_sandbox_id=sb or f"sb-{uid}",
        metadata=api.ContainerMetadata(name=name, attempt=attempt),
        state=api.CONTAINER_RUNNING if running else api.CONTAINER_EXITED,
        created_at=(100 + attempt) * S,
        labels={"io.kubernetes.pod.uid": uid} if uid else {},
    )


def sandbox(sid: str, uid: str, *, ready: bool = False, at: int = S) -> api.PodSandbox:
    return api.PodSandbox(
        id=sid,
        metadata=api.PodSandboxMetadata(name="p", uid=uid, namespace="ns"),
        state=api.SANDBOX_READY if ready else api.SANDBOX_NOTREADY,
        created_at=at,
    )


def _plan(
    containers: Sequence[api.Container], sandboxes: Sequence[api.PodSandbox] = (), **kw: Any
) -> Plan:
    kw.setdefault("keep", {"kept"}.__contains__)
    kw.setdefault("sources_ready", True)
    return plan(containers, sandboxes, now_ns=NOW, **kw)


def test_newest_dead_container_per_name_stays_for_a_kept_pod() -> None:
    cs = [
        ctr("a0", "kept", "a", 0),
        ctr("a1", "kept", "a", 1),
        ctr("a2", "kept", "a", 2),
        ctr("a3", "kept", "a", 3, running=True),
        ctr("b0", "kept", "b", 0),
    ]
    assert sorted(_plan(cs).containers) == ["a0", "a1"]


def test_a_pod_not_kept_loses_every_dead_container_once_sources_are_ready() -> None:
    cs = [ctr("g0", "gone", "c", 0), ctr("g1", "gone", "c", 1), ctr("k0", "kept", "c", 0)]
    assert sorted(_plan(cs).containers) == ["g0", "g1"]
    # before every pod source was read, a pod not known yet is treated like a kept one
    assert _plan(cs, sources_ready=False).containers == ("g0",)


def test_running_young_and_unlabelled_containers_stay() -> None:
    cs = [
        ctr("r", "gone", "c", 0, running=True),
        ctr("young", "gone", "d", 899),  # created at 999 s, now 1000 s
        ctr("foreign", "", "c", 0),
    ]
    assert _plan(cs, policy=Policy(min_age_seconds=10)).containers == ()
    assert _plan(cs).containers == ("young",)


def test_node_wide_cap_removes_the_oldest() -> None:
    cs = [ctr(f"{n}{i}", "kept", n, i) for n in ("a", "b") for i in range(3)]
    capped = _plan(cs, policy=Policy(max_per_pod_container=-1, max_containers=3))
    # one per unit first (3 // 2 units), then nothing more to remove
    assert sorted(capped.containers) == ["a0", "a1", "b0", "b1"]
    assert sorted(_plan(cs, policy=Policy(max_containers=1)).containers) == [
        "a0",
        "a1",
        "b0",
        "b1",
        "b2",
    ]


def test_dead_sandboxes() -> None:
    sbs = [
        sandbox("sb-gone", "gone"),
        sandbox("old", "kept", at=S),
        sandbox("sb-kept", "kept", at=2 * S),
        sandbox("busy-old", "kept2", at=S),
        sandbox("new2", "kept2", at=2 * S, ready=True),
    ]
    cs = [ctr("g0", "gone", "c", 0), ctr("k", "kept2", "c", 0, running=True, sb="busy-old")]
    out = _plan(cs, sbs, keep={"kept", "kept2"}.__contains__)
    assert out.containers == ("g0",)
    # the gone pod's sandbox is empty once g0 goes; the kept pod's older sandbox goes; the newest
    # not-ready sandbox of a kept pod, a ready one and one still holding a container stay
    assert sorted(out.sandboxes) == ["old", "sb-gone"]
    no_containers = _plan([], sbs, sources_ready=False, keep=lambda uid: False)
    assert no_containers.sandboxes == ("old", "busy-old")  # only the older ones
