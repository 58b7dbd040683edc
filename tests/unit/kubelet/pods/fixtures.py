"""Small builders for plain test data: pods, runtime containers and sandboxes.
No I/O; every time is a float on a fake clock."""

from __future__ import annotations

from typing import Any

from kubelet.pods.model import (
    Container,
    ContainerID,
    ContainerState,
    Pod,
    PodUID,
    RestartPolicy,
    RuntimeContainer,
    RuntimePod,
    RuntimeSandbox,
    SandboxID,
    SandboxState,
)

UID = PodUID("uid-1")
NOW = 1000.0
SB = RuntimeSandbox(SandboxID("sb1"), SandboxState.READY, created_at=10.0, attempt=0, ip="10.0.0.5")
DEAD_SB = RuntimeSandbox(SandboxID("sb1"), SandboxState.NOTREADY, created_at=10.0, attempt=0)


def ctr(name: str, **kw: Any) -> Container:
    return Container(name=name, image="img:1", **kw)


def sidecar(name: str, **kw: Any) -> Container:
    return Container(name=name, image="img:1", restart_policy=RestartPolicy.ALWAYS, **kw)


def pod(
    *containers: str | Container,
    init: tuple[str | Container, ...] = (),
    policy: RestartPolicy = RestartPolicy.ALWAYS,
    **kw: Any,
) -> Pod:
    def mk(c: str | Container) -> Container:
        return ctr(c) if isinstance(c, str) else c

    return Pod(
        uid=UID,
        namespace="default",
        name="web",
        containers=tuple(mk(c) for c in containers),
        init_containers=tuple(mk(c) for c in init),
        restart_policy=policy,
        **kw,
    )


def running(name: str, *, restart: int = 0, cid: str | None = None, **kw: Any) -> RuntimeContainer:
    return RuntimeContainer(
        id=ContainerID(cid or f"{name}-{restart}"),
        name=name,
        state=ContainerState.RUNNING,
        started_at=NOW - 100,
        restart_count=restart,
        **kw,
    )


def exited(
    name: str,
    code: int = 0,
    *,
    restart: int = 0,
    finished: float = NOW - 1,
    cid: str | None = None,
    **kw: Any,
) -> RuntimeContainer:
    return RuntimeContainer(
        id=ContainerID(cid or f"{name}-{restart}"),
        name=name,
        state=ContainerState.EXITED,
        exit_code=code,
        started_at=finished - 5,
        finished_at=finished,
        restart_count=restart,
        **kw,
    )


def other(name: str, state: ContainerState, *, restart: int = 0) -> RuntimeContainer:
    return RuntimeContainer(id=ContainerID(f"{name}-{restart}"), name=name, state=state)


def rt(*containers: RuntimeContainer, sandboxes: tuple[RuntimeSandbox, ...] = (SB,)) -> RuntimePod:
    return RuntimePod(uid=UID, sandboxes=sandboxes, containers=containers)
