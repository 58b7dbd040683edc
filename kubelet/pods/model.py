"""Pod model as frozen data: the spec side everything reads (decoded from apiserver JSON once,
by pods/decode.py) and the runtime view of a pod as CRI reports it. No I/O, no grpc; the few
sub-objects still kept as written (resources, probes) are typed JsonMap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType, TypeVar

from kube.jsontypes import JsonMap

PodUID = NewType("PodUID", str)
ContainerID = NewType("ContainerID", str)
SandboxID = NewType("SandboxID", str)

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
class FieldRef:
    """valueFrom.fieldRef: a downward API field (checked where it is resolved, pods/env.py)."""

    field_path: str


@dataclass(frozen=True)
class ResourceFieldRef:
    """valueFrom.resourceFieldRef: a container's request or limit, in units of divisor."""

    resource: str
    container_name: str = ""
    divisor: str = ""


@dataclass(frozen=True)
class KeyRef:
    """valueFrom.configMapKeyRef / secretKeyRef: one key of a ConfigMap or Secret."""

    kind: str
    """configmaps or secrets (the resource's plural)."""
    name: str
    key: str
    optional: bool = False


EnvSource = FieldRef | ResourceFieldRef | KeyRef


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = ""
    value_from: JsonMap | None = None
    """valueFrom as written: only for the spec hash (the hash of a running container must not
    change with how the agent models it); `source` is what is read."""
    source: EnvSource | None = None
    """valueFrom decoded; None without one, or with a kind this agent does not know ("")."""


@dataclass(frozen=True)
class EnvFromSource:
    """envFrom: every key of a ConfigMap or Secret, prefixed."""

    kind: str
    """configmaps or secrets."""
    name: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True)
class SecurityContext:
    """The identity fields of a pod's or a container's securityContext (what admission reads;
    criconfig still reads the rest from the object)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None

    def over(self, pod_level: SecurityContext) -> SecurityContext:
        """This container's values where set, else the pod's (DetermineEffectiveSecurityContext)."""
        own, inherited = self, pod_level
        return SecurityContext(
            run_as_user=_first(own.run_as_user, inherited.run_as_user),
            run_as_group=_first(own.run_as_group, inherited.run_as_group),
            run_as_non_root=_first(own.run_as_non_root, inherited.run_as_non_root),
        )


_T = TypeVar("_T")


def _first(own: _T | None, inherited: _T | None) -> _T | None:
    return own if own is not None else inherited


NO_SECURITY_CONTEXT = SecurityContext()


@dataclass(frozen=True)
class Sysctl:
    name: str
    value: str = ""


@dataclass(frozen=True)
class DNSOption:
    name: str
    value: str | None = None


@dataclass(frozen=True)
class PodDNSConfig:
    """spec.dnsConfig: merged into what dnsPolicy gives (pods/dns.py)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[DNSOption, ...] = ()


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""
    sub_path_expr: str = ""
    mount_propagation: str = ""


@dataclass(frozen=True)
class HostAlias:
    ip: str
    hostnames: tuple[str, ...] = ()


@dataclass(frozen=True)
class Container:
    """One container (regular or init) as the planner and status derivation see it."""

    name: str
    image: str
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    env_from: tuple[EnvFromSource, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    working_dir: str = ""
    ports: tuple[ContainerPort, ...] = ()
    termination_message_path: str = DEFAULT_TERMINATION_MESSAGE_PATH
    termination_message_policy: str = "File"
    resources: JsonMap = field(default_factory=dict)
    restart_policy: RestartPolicy | None = None
    """Only for init containers: Always marks a restartable init container (a sidecar)."""
    liveness_probe: JsonMap | None = None
    readiness_probe: JsonMap | None = None
    startup_probe: JsonMap | None = None
    target_container_name: str = ""
    """Only for ephemeral containers: the container whose PID namespace it joins."""
    post_start: JsonMap | None = None
    """lifecycle.postStart's handler as written (pods/hooks.py runs it); None without one."""
    pre_stop: JsonMap | None = None
    """lifecycle.preStop's handler as written; None without one."""
    security_context: SecurityContext = NO_SECURITY_CONTEXT
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
    resources: JsonMap = field(default_factory=dict)
    """spec.resources (pod-level requests and limits), quantities checked; {} when unset."""
    dns_policy: str = "ClusterFirst"
    """spec.dnsPolicy as written (an unknown one is pods/dns.py's to judge)."""
    dns_config: PodDNSConfig | None = None
    hostname: str = ""
    """spec.hostname ("": the pod's name); checked as a DNS label where it is used."""
    subdomain: str = ""
    set_hostname_as_fqdn: bool = False
    hostname_override: str | None = None
    """spec.hostnameOverride: wins over hostname and subdomain when set."""
    os_name: str = ""
    """spec.os.name ("": unset)."""
    host_ipc: bool = False
    security_context: SecurityContext = NO_SECURITY_CONTEXT
    """spec.securityContext's identity fields, the defaults of every container's."""
    sysctls: tuple[Sysctl, ...] = ()
    """spec.securityContext.sysctls."""
    service_account_name: str = ""
    enable_service_links: bool = True
    status_pod_ips: tuple[str, ...] = ()
    """status.podIPs (else podIP) as last written: the env's fallback before the sandbox's."""
    host_aliases: tuple[HostAlias, ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    """spec.imagePullSecrets' names, in order, empty ones dropped."""
    runtime_class_name: str = ""
    """spec.runtimeClassName ("": the runtime's default handler)."""
    volumes: tuple[JsonMap, ...] = ()
    """spec.volumes as written, each with a name (their sources are volumes/'s to read)."""

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
