"""The narrow interfaces the pod executor and workers consume from other managers: volumes,
environment, lifecycle hooks and probes. Only protocols and do-nothing defaults live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cri import api
from kube.jsontypes import JsonMap
from kubelet.pods.model import NO_PROBES, Container, ContainerID, Pod, ProbeResults, RuntimePod


class ContainerConfigError(Exception):
    """A user's reason a container cannot be created yet (missing configmap key, bad subPath...):
    becomes the waiting reason CreateContainerConfigError with this message, and an event."""


class VolumeSetupError(Exception):
    """A pod's volumes could not be set up: the pod stays ContainerCreating; event FailedMount."""


@dataclass(frozen=True)
class ResolvedContainer:
    """What the environment manager hands the executor for one container."""

    env: list[tuple[str, str]]
    command: tuple[str, ...] = ()
    """The container's command with $(VAR) references expanded."""
    args: tuple[str, ...] = ()
    """The container's args with $(VAR) references expanded."""


class Volumes(Protocol):
    async def setup(self, pod: JsonMap) -> None:
        """Make every volume of the pod ready (idempotent); raise VolumeSetupError."""

    def mounts(self, pod: Pod, container: Container) -> list[api.Mount]:
        """The CRI mounts of one container (after setup); raise ContainerConfigError."""

    async def teardown(self, pod_uid: str) -> None:
        """Unmount and remove everything made for the pod; called once nothing runs."""


class Environment(Protocol):
    async def resolve(self, pod: Pod, container: Container) -> ResolvedContainer:
        """Env vars and expanded command/args; raise ContainerConfigError."""


class Hooks(Protocol):
    async def post_start(self, pod: Pod, container: Container, container_id: str) -> str | None:
        """Run postStart; returns an error message when it failed (the container is killed)."""

    async def pre_stop(self, pod: Pod, container: Container, container_id: str, grace: int) -> None:
        """Run preStop within the grace period before the container is stopped."""


class Probes(Protocol):
    def sync(self, pod: Pod, runtime: RuntimePod) -> None:
        """Start probe workers for running containers and stop those of gone containers."""

    def results(self, uid: str) -> tuple[ProbeResults, dict[ContainerID, bool]]:
        """Probe results for the planner and readiness per container for the status."""

    def forget(self, uid: str) -> None:
        """Stop every probe of the pod."""


# ---- do-nothing defaults: what the agent has until a manager exists ---------------------------
class NoVolumes:
    async def setup(self, pod: JsonMap) -> None:
        return None

    def mounts(self, pod: Pod, container: Container) -> list[api.Mount]:
        return []

    async def teardown(self, pod_uid: str) -> None:
        return None


class PlainEnvironment:
    """Only literal `value` env vars; no $(VAR) expansion."""

    async def resolve(self, pod: Pod, container: Container) -> ResolvedContainer:
        env = [(e.name, e.value) for e in container.env if e.value_from is None]
        return ResolvedContainer(env=env, command=container.command, args=container.args)


class NoHooks:
    async def post_start(self, pod: Pod, container: Container, container_id: str) -> str | None:
        return None

    async def pre_stop(self, pod: Pod, container: Container, container_id: str, grace: int) -> None:
        return None


@dataclass
class NoProbes:
    """Every running container counts as started and ready."""

    _unused: dict[str, int] = field(default_factory=dict)

    def sync(self, pod: Pod, runtime: RuntimePod) -> None:
        return None

    def results(self, uid: str) -> tuple[ProbeResults, dict[ContainerID, bool]]:
        return NO_PROBES, {}

    def forget(self, uid: str) -> None:
        return None
