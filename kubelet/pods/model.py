"""Pod model as frozen data: the spec view the planner needs (converted from apiserver JSON) and
the runtime view of a pod as CRI reports it. No I/O and no grpc imports here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NewType, TypeVar

from kube.quantity import parse_quantity

PodUID = NewType("PodUID", str)
ContainerID = NewType("ContainerID", str)
SandboxID = NewType("SandboxID", str)

Json = dict[str, Any]
_E = TypeVar("_E", bound=StrEnum)

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_GRACE_PERIOD_SECONDS = 30


class PodSpecError(ValueError):
    """A pod the agent cannot run as written: names the pod (ns/name), the container when one
    is at fault, and the field. The one error type for a user's mistake in a pod spec, whether
    found decoding it or building its runtime config; it reaches an event or a waiting reason."""

    def __init__(
        self, pod: str, field_path: str, problem: str, container: str | None = None
    ) -> None:
        self.pod = pod
        self.container = container
        self.field = field_path
        self.problem = problem
        where = f'container "{container}": ' if container is not None else ""
        super().__init__(f"pod {pod}: {where}{field_path}: {problem}")


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class SandboxState(StrEnum):
    READY = "READY"
    NOTREADY = "NOTREADY"


class ContainerState(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"
    host_port: int | None = None
    host_ip: str = ""


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = ""
    value_from: Mapping[str, Any] | None = None
    """Passed through untouched (configMapKeyRef, secretKeyRef, fieldRef...); resolved elsewhere."""


@dataclass(frozen=True)
class Container:
    """One container (regular or init) as the planner and status derivation see it."""

    name: str
    image: str
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    working_dir: str = ""
    ports: tuple[ContainerPort, ...] = ()
    termination_message_path: str = DEFAULT_TERMINATION_MESSAGE_PATH
    termination_message_policy: str = "File"
    resources: Mapping[str, Any] = field(default_factory=dict)
    restart_policy: RestartPolicy | None = None
    """Only for init containers: Always marks a restartable init container (a sidecar)."""
    liveness_probe: Mapping[str, Any] | None = None
    readiness_probe: Mapping[str, Any] | None = None
    startup_probe: Mapping[str, Any] | None = None
    target_container_name: str = ""
    """Only for ephemeral containers: the container whose PID namespace it joins."""
    hash: str = ""
    """Spec hash compared with the runtime's; computed from the fields above when left empty."""

    def __post_init__(self) -> None:
        if not self.hash:
            object.__setattr__(self, "hash", container_hash(self))

    @property
    def is_sidecar(self) -> bool:
        return self.restart_policy == RestartPolicy.ALWAYS


def container_hash(c: Container) -> str:
    """A stable hex digest of what forces a restart when it changes (resources excluded, as
    upstream excludes them so that in-place resize does not restart)."""
    canon = {
        "name": c.name,
        "image": c.image,
        "command": c.command,
        "args": c.args,
        "env": [(e.name, e.value, e.value_from) for e in c.env],
        "workingDir": c.working_dir,
        "ports": [(p.container_port, p.name, p.protocol, p.host_port, p.host_ip) for p in c.ports],
        "terminationMessage": (c.termination_message_path, c.termination_message_policy),
        "restartPolicy": c.restart_policy,
        "probes": (c.liveness_probe, c.readiness_probe, c.startup_probe),
    }
    raw = json.dumps(canon, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Pod:
    """The spec side of one pod, as far as the planner and status derivation need it."""

    uid: PodUID
    namespace: str
    name: str
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    termination_grace_period_seconds: int = DEFAULT_GRACE_PERIOD_SECONDS
    active_deadline_seconds: int | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    host_network: bool = False
    node_name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    readiness_gates: tuple[str, ...] = ()
    """Condition types from spec.readinessGates."""
    ephemeral_containers: tuple[Container, ...] = ()
    """spec.ephemeralContainers (kubectl debug): started once, never restarted."""
    resources: Mapping[str, Any] = field(default_factory=dict)
    """spec.resources (pod-level requests and limits), quantities checked; {} when unset."""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_deleted(self) -> bool:
        return self.deletion_timestamp is not None

    @property
    def sidecars(self) -> tuple[Container, ...]:
        return tuple(c for c in self.init_containers if c.is_sidecar)

    def container(self, name: str) -> Container | None:
        for c in (*self.init_containers, *self.containers, *self.ephemeral_containers):
            if c.name == name:
                return c
        return None

    def grace_period_seconds(self) -> int:
        """min(deletion grace, spec grace) over the ones that are set."""
        if self.deletion_grace_period_seconds is None:
            return self.termination_grace_period_seconds
        return min(self.deletion_grace_period_seconds, self.termination_grace_period_seconds)


@dataclass(frozen=True)
class Waiting:
    """Why a container is waiting, in upstream words (CrashLoopBackOff, ErrImagePull...)."""

    reason: str
    message: str = ""


@dataclass(frozen=True)
class ProbeResults:
    """Prober output the planner and status derivation read, keyed by runtime container ID.
    A running container counts as started unless it is listed in not_started."""

    liveness_failed: frozenset[ContainerID] = frozenset()
    startup_failed: frozenset[ContainerID] = frozenset()
    not_started: frozenset[ContainerID] = frozenset()

    def started(self, cid: ContainerID) -> bool:
        return cid not in self.not_started


NO_PROBES = ProbeResults()


@dataclass(frozen=True)
class RuntimeSandbox:
    id: SandboxID
    state: SandboxState
    created_at: float = 0.0
    """Seconds since the epoch."""
    attempt: int = 0
    ip: str | None = None
    """None: not reported (unknown); "": reported without an IP."""


@dataclass(frozen=True)
class RuntimeContainer:
    id: ContainerID
    name: str
    state: ContainerState
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0
    image: str = ""
    image_ref: str = ""
    hash: str = ""
    """The spec hash recorded when the container was created; "" when unknown."""
    created_at: float = 0.0
    sandbox_id: SandboxID | None = None
    """The sandbox it was created in; None when unknown (then it counts as the current one)."""


@dataclass(frozen=True)
class RuntimePod:
    """All the runtime holds for one pod UID: every sandbox and container instance."""

    uid: PodUID
    sandboxes: tuple[RuntimeSandbox, ...] = ()
    containers: tuple[RuntimeContainer, ...] = ()

    def latest_sandbox(self) -> RuntimeSandbox | None:
        if not self.sandboxes:
            return None
        return max(self.sandboxes, key=lambda s: (s.created_at, s.attempt))

    def history(self, name: str) -> list[RuntimeContainer]:
        """Instances of the named container, newest first."""
        found = [c for c in self.containers if c.name == name]
        found.sort(key=lambda c: (c.restart_count, c.created_at, c.started_at or 0.0), reverse=True)
        return found

    def latest(self, name: str) -> RuntimeContainer | None:
        h = self.history(name)
        return h[0] if h else None

    def in_sandbox(self, sandbox_id: SandboxID | None) -> RuntimePod:
        """Only the containers of one sandbox (plus those whose sandbox is unknown)."""
        keep = tuple(c for c in self.containers if c.sandbox_id in (None, sandbox_id))
        return RuntimePod(uid=self.uid, sandboxes=self.sandboxes, containers=keep)

    def alive(self) -> list[RuntimeContainer]:
        """Every container instance that is not known to have exited."""
        return [c for c in self.containers if c.state is not ContainerState.EXITED]


# ---------------------------------------------------------------- quantities


def default_pull_policy(image: str) -> PullPolicy:
    """Upstream defaulting: Always for ":latest" or no tag (and no digest), else IfNotPresent."""
    if "@" in image:
        return PullPolicy.IF_NOT_PRESENT
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        return PullPolicy.ALWAYS
    return PullPolicy.IF_NOT_PRESENT


# ---------------------------------------------------------------- converters


class _Reader:
    """Typed field access on one pod dict; every failure names the pod and the field path."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def fail(self, path: str, problem: str) -> PodSpecError:
        return PodSpecError(self.ref, path, problem)

    def obj(self, d: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        v = d.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self.fail(f"{path}.{key}", "must be an object")
        return v

    def items(self, d: Mapping[str, Any], key: str, path: str) -> list[Any]:
        v = d.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.fail(f"{path}.{key}", "must be a list")
        return v

    def text(self, d: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        v = d.get(key, default)
        if v is None or not isinstance(v, str):
            raise self.fail(f"{path}.{key}", "must be a string")
        return v

    def opt_int(self, d: Mapping[str, Any], key: str, path: str) -> int | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(f"{path}.{key}", "must be an integer")
        return v

    def strings(self, d: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        vals = self.items(d, key, path)
        if not all(isinstance(s, str) for s in vals):
            raise self.fail(f"{path}.{key}", "must be a list of strings")
        return tuple(vals)

    def str_map(self, d: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
        m = self.obj(d, key, path)
        if not all(isinstance(v, str) for v in m.values()):
            raise self.fail(f"{path}.{key}", "values must be strings")
        return dict(m)

    def enum(self, d: Mapping[str, Any], key: str, path: str, kind: type[_E]) -> _E:
        raw = self.text(d, key, path)
        try:
            return kind(raw)
        except ValueError:
            allowed = ", ".join(k.value for k in kind)
            raise self.fail(f"{path}.{key}", f"{raw!r} is not one of {allowed}") from None


def _ports(r: _Reader, c: Mapping[str, Any], path: str) -> tuple[ContainerPort, ...]:
    out = []
    for i, p in enumerate(r.items(c, "ports", path)):
        pp = f"{path}.ports[{i}]"
        if not isinstance(p, dict):
            raise r.fail(pp, "must be an object")
        port = r.opt_int(p, "containerPort", pp)
        if port is None:
            raise r.fail(f"{pp}.containerPort", "is required")
        out.append(
            ContainerPort(
                container_port=port,
                name=r.text(p, "name", pp, ""),
                protocol=r.text(p, "protocol", pp, "TCP"),
                host_port=r.opt_int(p, "hostPort", pp),
                host_ip=r.text(p, "hostIP", pp, ""),
            )
        )
    return tuple(out)


def _env(r: _Reader, c: Mapping[str, Any], path: str) -> tuple[EnvVar, ...]:
    out = []
    for i, e in enumerate(r.items(c, "env", path)):
        ep = f"{path}.env[{i}]"
        if not isinstance(e, dict):
            raise r.fail(ep, "must be an object")
        vf = e.get("valueFrom")
        if vf is not None and not isinstance(vf, dict):
            raise r.fail(f"{ep}.valueFrom", "must be an object")
        out.append(
            EnvVar(name=r.text(e, "name", ep), value=r.text(e, "value", ep, ""), value_from=vf)
        )
    return tuple(out)


def _resources(r: _Reader, c: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    res = r.obj(c, "resources", path)
    for kind in ("requests", "limits"):
        for name, qty in r.obj(res, kind, f"{path}.resources").items():
            try:
                parse_quantity(qty)
            except ValueError as e:
                raise r.fail(f"{path}.resources.{kind}.{name}", str(e)) from None
    return dict(res)


def _probe(r: _Reader, c: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    return r.obj(c, key, path) if c.get(key) is not None else None


def _container(r: _Reader, c: object, path: str, *, init: bool) -> Container:
    if not isinstance(c, dict):
        raise r.fail(path, "must be an object")
    name = r.text(c, "name", path)
    image = r.text(c, "image", path)
    if not name:
        raise r.fail(f"{path}.name", "must not be empty")
    if not image:
        raise r.fail(f"{path}.image", "must not be empty")
    pull = (
        r.enum(c, "imagePullPolicy", path, PullPolicy)
        if c.get("imagePullPolicy")
        else default_pull_policy(image)
    )
    restart = r.enum(c, "restartPolicy", path, RestartPolicy) if c.get("restartPolicy") else None
    if restart is not None and (not init or restart != RestartPolicy.ALWAYS):
        raise r.fail(f"{path}.restartPolicy", "only Always on an init container is supported")
    return Container(
        name=name,
        image=image,
        image_pull_policy=pull,
        command=r.strings(c, "command", path),
        args=r.strings(c, "args", path),
        env=_env(r, c, path),
        working_dir=r.text(c, "workingDir", path, ""),
        ports=_ports(r, c, path),
        termination_message_path=r.text(
            c, "terminationMessagePath", path, DEFAULT_TERMINATION_MESSAGE_PATH
        ),
        termination_message_policy=r.text(c, "terminationMessagePolicy", path, "File"),
        resources=_resources(r, c, path),
        restart_policy=restart,
        liveness_probe=_probe(r, c, "livenessProbe", path),
        readiness_probe=_probe(r, c, "readinessProbe", path),
        startup_probe=_probe(r, c, "startupProbe", path),
    )


def _containers(r: _Reader, spec: Mapping[str, Any], key: str) -> tuple[Container, ...]:
    items = r.items(spec, key, "spec")
    init = key == "initContainers"
    out = tuple(_container(r, c, f"spec.{key}[{i}]", init=init) for i, c in enumerate(items))
    return out


def _ephemeral_containers(r: _Reader, spec: Mapping[str, Any]) -> tuple[Container, ...]:
    """spec.ephemeralContainers; probes, ports and resources (which the apiserver refuses on
    them) are dropped, targetContainerName is kept."""
    out = []
    for i, c in enumerate(r.items(spec, "ephemeralContainers", "spec")):
        path = f"spec.ephemeralContainers[{i}]"
        base = _container(r, c, path, init=False)
        out.append(
            replace(
                base,
                ports=(),
                resources={},
                liveness_probe=None,
                readiness_probe=None,
                startup_probe=None,
                target_container_name=r.text(c, "targetContainerName", path, ""),
            )
        )
    return tuple(out)


def _check_unique(r: _Reader, containers: Sequence[Container]) -> None:
    seen: set[str] = set()
    for c in containers:
        if c.name in seen:
            raise r.fail("spec.containers", f"duplicate container name {c.name!r}")
        seen.add(c.name)


class PodSpecView:
    """Converters from the apiserver's Pod JSON to the frozen model."""

    @staticmethod
    def from_api(pod: Mapping[str, Any]) -> Pod:
        """Convert a Pod dict; raises PodSpecError naming ns/name and the bad field."""
        if not isinstance(pod, dict):
            raise PodSpecError("?/?", "", "pod must be an object")
        meta = pod.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        ns, nm = meta.get("namespace") or "default", meta.get("name") or "?"
        r = _Reader(f"{ns}/{nm}")
        if not isinstance(pod.get("metadata"), dict):
            raise r.fail("metadata", "must be an object")
        uid = r.text(meta, "uid", "metadata")
        if not isinstance(meta.get("name"), str) or not uid:
            raise r.fail("metadata.name" if uid else "metadata.uid", "is required")
        spec = r.obj(pod, "spec", "")
        containers = _containers(r, spec, "containers")
        if not containers:
            raise r.fail("spec.containers", "must have at least one container")
        inits = _containers(r, spec, "initContainers")
        ephemeral = _ephemeral_containers(r, spec)
        _check_unique(r, (*inits, *containers, *ephemeral))
        grace = r.opt_int(spec, "terminationGracePeriodSeconds", "spec")
        gates = r.items(spec, "readinessGates", "spec")
        return Pod(
            uid=PodUID(uid),
            namespace=ns,
            name=nm,
            containers=containers,
            init_containers=inits,
            restart_policy=r.enum(
                {"restartPolicy": spec.get("restartPolicy") or "Always"},
                "restartPolicy",
                "spec",
                RestartPolicy,
            ),
            termination_grace_period_seconds=DEFAULT_GRACE_PERIOD_SECONDS
            if grace is None
            else grace,
            active_deadline_seconds=r.opt_int(spec, "activeDeadlineSeconds", "spec"),
            deletion_timestamp=meta.get("deletionTimestamp"),
            deletion_grace_period_seconds=r.opt_int(meta, "deletionGracePeriodSeconds", "metadata"),
            host_network=bool(spec.get("hostNetwork", False)),
            node_name=r.text(spec, "nodeName", "spec", ""),
            labels=r.str_map(meta, "labels", "metadata"),
            annotations=r.str_map(meta, "annotations", "metadata"),
            readiness_gates=tuple(
                r.text(g, "conditionType", f"spec.readinessGates[{i}]")
                for i, g in enumerate(gates)
                if isinstance(g, dict)
            ),
            ephemeral_containers=ephemeral,
            resources=_resources(r, spec, "spec"),
        )


def pod_from_api(pod: Mapping[str, Any]) -> Pod:
    """Shorthand for PodSpecView.from_api."""
    return PodSpecView.from_api(pod)
