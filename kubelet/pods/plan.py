"""The pod planner: from a pod's spec and its runtime state, what to create, start and kill, in
which order (upstream kuberuntime's computePodActions). Pure: no I/O, no clock, no mutation.

Rules, in the order they apply (each one is tested in tests/unit/kubelet/pods/test_plan.py):

1. Deletion. A pod with a deletionTimestamp is torn down (`_terminate`): nothing starts; every
   container not known to have exited is killed, regular containers (and running init
   containers, and containers no longer in the spec) first, then sidecars one stage at a time in
   reverse spec order; then every READY sandbox is stopped. Grace period: min(deletion grace,
   spec grace). The executor applies upstream's floor of 2 s per container kill. A pod the node
   halts (`Halt`: evicted, node shutdown, or already ended when this agent found it) is torn
   down the same way before anything else, within min(its grace, the halt's), and fails with
   the halt's reason and message when it gives one.
2. Active deadline. When spec.activeDeadlineSeconds is set and `now - start_time` reaches it,
   the pod fails (DeadlineExceeded) and is torn down as in 1.
3. Sandbox. A new sandbox is needed when there is none (attempt 0), when the newest is not
   READY, when more than one is READY, or when a non-hostNetwork sandbox reported an empty IP
   (attempt = newest attempt + 1). Then the pod is killed first (old sandbox included) and:
   a. restartPolicy Never, a sandbox existed before and containers already ran: no new sandbox
      (the pod is done; its phase follows from the container statuses);
   b. OnFailure: regular containers that already succeeded are not started again;
   c. initialization ran and nothing is left to start: no new sandbox;
   d. init containers exist: start again from the first one (a restarted pod re-initializes);
   e. otherwise start the regular containers (none left: no new sandbox).
4. Init containers, in spec order, looking only at the current sandbox's containers:
   - once any regular container exists in the sandbox, initialization is done and only sidecars
     are tended (rule 5);
   - a regular init container must exit 0 before the next one starts; while it is created or
     running, wait; when it failed (or its state is unknown): restartPolicy Never fails the pod
     (it is torn down), otherwise it is killed if needed and started again (subject to back-off);
   - a sidecar (init container with restartPolicy Always) is started, and the next init
     container starts once it has started (running, and not held back by a startup probe);
   - an init container with no record before the last one that has a record is taken as done
     (its record was garbage collected), as upstream does.
5. Sidecars are kept running whatever the pod's restartPolicy: restarted when they exited or
   are missing, killed and restarted when their state is unknown, their spec hash changed, or a
   liveness or startup probe failed.
6. Regular containers start only after initialization. A container that is not running is
   (re)started per `should_restart`: never ran, created or unknown: yes; exited: Always yes,
   OnFailure on non-zero exit, Never no. A running container is killed when its spec hash
   changed (and restarted) or its liveness/startup probe failed (restarted unless Never).
7. When no regular container is running, starting or waiting to restart, the pod has finished:
   it is torn down as in 1 (sidecars stopped last, then the sandbox).
8. Back-off: a container whose newest instance exited is restarted only when
   `backoff.is_in_backoff((uid, name), now, since=finished_at)` is 0; otherwise it gets a
   `waiting` entry CrashLoopBackOff, "back-off 20s restarting failed container=NAME
   pod=NS/NAME(UID)". For every restart that goes ahead, `backoff_steps[name]` tells the worker
   what to record with `backoff.next(key, since)` once it has started the container
   (`PodActions.record_backoff`). The planner itself never mutates the BackOff.
9. Ephemeral containers (spec.ephemeralContainers, added by `kubectl debug`) start in a pod whose
   sandbox is in place, even before initialization is done, when the runtime has no instance of
   them in any sandbox; so they are never restarted, never started in a new sandbox (rule 3), and
   not started while the pod is terminating (rules 1, 2 and 7 start nothing). They do not count
   as active for rule 7; the executor starts them after init containers, before regular ones.
10. Grace period of a probe kill. A container killed for a failed liveness (startup) probe gets
   that probe's terminationGracePeriodSeconds when set, else the pod's; a pod deletion's grace
   period (deletionGracePeriodSeconds) wins over both (upstream setTerminationGracePeriod).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from kubelet.pods.backoff import BackOff
from kubelet.pods.model import (
    NO_PROBES,
    Container,
    ContainerID,
    ContainerState,
    Pod,
    PodUID,
    ProbeResults,
    RestartPolicy,
    RuntimeContainer,
    RuntimePod,
    SandboxID,
    SandboxState,
    Waiting,
)

KILL_LIVENESS = "LivenessProbe"
KILL_STARTUP = "StartupProbe"
KILL_UNKNOWN = "Unknown"
KILL_SPEC_CHANGED = "SpecChanged"
KILL_POD = "PodTermination"

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
DEADLINE_EXCEEDED = "DeadlineExceeded"
INIT_CONTAINER_FAILED = "InitContainerFailed"

BackOffKey = tuple[PodUID, str]


class KillInfo(NamedTuple):
    name: str
    reason: str
    message: str
    grace_seconds: int | None = None
    """Replaces the pod's grace period: a failed probe's terminationGracePeriodSeconds."""


@dataclass(frozen=True)
class BackOffStep:
    """What the worker records in the BackOff after it restarts the container."""

    key: BackOffKey
    since: float


@dataclass(frozen=True)
class Halt:
    """The node stops a pod for good (evicted, node shutdown, or it had ended before this agent
    saw it): its containers are killed within this grace period (rule 1)."""

    grace_seconds: int
    failure: Waiting | None = None
    """Why it fails (Evicted...); None: it already ended before this agent saw it."""


@dataclass
class _Draft:
    """PodActions while the planner builds it: the only mutable form, never handed out."""

    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_ids_to_kill: list[SandboxID] = field(default_factory=list)
    attempt: int = 0
    next_init_container_to_start: str | None = None
    init_containers_to_start: list[str] = field(default_factory=list)
    containers_to_start: list[str] = field(default_factory=list)
    ephemeral_containers_to_start: list[str] = field(default_factory=list)
    containers_to_kill: dict[ContainerID, KillInfo] = field(default_factory=dict)
    kill_stages: list[list[ContainerID]] = field(default_factory=list)
    pod_failed: bool = False
    pod_failed_reason: str = ""
    pod_failed_message: str = ""
    waiting: dict[str, Waiting] = field(default_factory=dict)
    backoff_steps: dict[str, BackOffStep] = field(default_factory=dict)
    grace_period_seconds: int = 30

    def done(self) -> PodActions:
        return PodActions(**vars(self))


@dataclass(frozen=True)
class PodActions:
    """The outcome of one planning round, never changed after it. The executor carries it out
    in this order: kill (stages, then sandboxes), create the sandbox, start sidecars, the next
    init container, ephemeral containers, then containers."""

    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_ids_to_kill: Sequence[SandboxID] = ()
    attempt: int = 0
    next_init_container_to_start: str | None = None
    init_containers_to_start: Sequence[str] = ()
    """Sidecars (restartable init containers) to start, in spec order."""
    containers_to_start: Sequence[str] = ()
    ephemeral_containers_to_start: Sequence[str] = ()
    containers_to_kill: Mapping[ContainerID, KillInfo] = field(default_factory=dict)
    kill_stages: Sequence[Sequence[ContainerID]] = ()
    """containers_to_kill grouped: kill a stage fully (in parallel) before the next one."""
    pod_failed: bool = False
    pod_failed_reason: str = ""
    pod_failed_message: str = ""
    waiting: Mapping[str, Waiting] = field(default_factory=dict)
    backoff_steps: Mapping[str, BackOffStep] = field(default_factory=dict)
    grace_period_seconds: int = 30

    @property
    def sandbox_id_to_kill(self) -> SandboxID | None:
        return self.sandbox_ids_to_kill[0] if self.sandbox_ids_to_kill else None

    @property
    def is_noop(self) -> bool:
        return not (
            self.create_sandbox
            or self.sandbox_ids_to_kill
            or self.containers_to_kill
            or self.next_init_container_to_start
            or self.init_containers_to_start
            or self.containers_to_start
            or self.ephemeral_containers_to_start
        )

    def record_backoff(self, name: str, backoff: BackOff) -> None:
        """Call after starting `name`: advances its back-off if this start was a restart."""
        step = self.backoff_steps.get(name)
        if step is not None:
            backoff.next(step.key, step.since)

    def describe(self) -> str:
        """One short line for logs."""
        parts: list[str] = []
        if self.pod_failed:
            parts.append(f"failed({self.pod_failed_reason})")
        if self.kill_pod:
            parts.append("kill_pod")
        if self.containers_to_kill:
            kills = " ".join(f"{k.name}({k.reason})" for k in self.containers_to_kill.values())
            parts.append(f"kill=[{kills}]")
        if self.sandbox_ids_to_kill:
            parts.append(f"stop_sandbox=[{' '.join(self.sandbox_ids_to_kill)}]")
        if self.create_sandbox:
            parts.append(f"create_sandbox(attempt={self.attempt})")
        if self.init_containers_to_start:
            parts.append(f"start_sidecars=[{' '.join(self.init_containers_to_start)}]")
        if self.next_init_container_to_start:
            parts.append(f"start_init={self.next_init_container_to_start}")
        if self.ephemeral_containers_to_start:
            parts.append(f"start_ephemeral=[{' '.join(self.ephemeral_containers_to_start)}]")
        if self.containers_to_start:
            parts.append(f"start=[{' '.join(self.containers_to_start)}]")
        if self.waiting:
            waits = " ".join(f"{n}:{w.reason}" for n, w in self.waiting.items())
            parts.append(f"waiting=[{waits}]")
        return " ".join(parts) if parts else "noop"


def should_restart(pod: Pod, container: Container, status: RuntimeContainer | None) -> bool:
    """Whether a container that is not running should be (re)started (upstream's
    ShouldContainerBeRestarted, plus: sidecars always restart)."""
    if pod.is_deleted:
        return False
    if status is None:
        return True
    if status.state is ContainerState.RUNNING:
        return False
    if status.state in (ContainerState.UNKNOWN, ContainerState.CREATED) or container.is_sidecar:
        return True
    if pod.restart_policy is RestartPolicy.NEVER:
        return False
    return not (pod.restart_policy is RestartPolicy.ON_FAILURE and status.exit_code == 0)


def go_duration(seconds: float) -> str:
    """Whole seconds the way Go prints a time.Duration: 10s, 1m20s, 5m0s, 1h0m0s."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def crash_loop_message(pod: Pod, name: str, delay: float) -> str:
    return (
        f"back-off {go_duration(delay)} restarting failed container={name} pod={pod.ref}({pod.uid})"
    )


@dataclass
class _Ctx:
    pod: Pod
    runtime: RuntimePod
    cur: RuntimePod
    acts: _Draft
    now: float
    backoff: BackOff
    probes: ProbeResults


def compute_pod_actions(
    pod: Pod,
    runtime: RuntimePod,
    *,
    now: float,
    backoff: BackOff,
    probe_results: ProbeResults | None = None,
    start_time: float | None = None,
    halt: Halt | None = None,
) -> PodActions:
    """What to do next for `pod` given what the runtime holds (see the module docstring).
    `start_time` (seconds since the epoch) is the pod's status.startTime, for the deadline;
    `halt` the node's decision to stop the pod for good."""
    acts = _Draft(grace_period_seconds=pod.grace_period_seconds())
    if halt is not None:
        return _halt(pod, runtime, acts, halt).done()
    if pod.is_deleted:
        return _terminate(pod, runtime, acts, "pod is being deleted").done()
    if _past_deadline(pod, now, start_time):
        acts.pod_failed = True
        acts.pod_failed_reason = DEADLINE_EXCEEDED
        acts.pod_failed_message = "Pod was active on the node longer than the specified deadline"
        return _terminate(pod, runtime, acts, acts.pod_failed_message).done()
    sandbox = runtime.latest_sandbox()
    problem = _sandbox_problem(pod, runtime)
    ctx = _Ctx(
        pod=pod,
        runtime=runtime,
        cur=runtime.in_sandbox(sandbox.id if sandbox else None),
        acts=acts,
        now=now,
        backoff=backoff,
        probes=probe_results or NO_PROBES,
    )
    if problem is not None or sandbox is None:
        return _plan_new_sandbox(ctx, problem or "no sandbox").done()
    acts.attempt = sandbox.attempt
    _plan_ephemeral(ctx)
    if not _plan_init(ctx):
        if acts.pod_failed:
            return _terminate(pod, runtime, acts, acts.pod_failed_message).done()
        return acts.done()
    if not _plan_regular(ctx):
        return _terminate(pod, runtime, acts, "all regular containers have exited").done()
    return acts.done()


def _halt(pod: Pod, runtime: RuntimePod, acts: _Draft, halt: Halt) -> _Draft:
    """Rule 1, halted: the shorter grace period; failed when the halt says why."""
    acts.grace_period_seconds = min(acts.grace_period_seconds, max(0, halt.grace_seconds))
    why = "the node stops the pod"
    if halt.failure is not None:
        acts.pod_failed = True
        acts.pod_failed_reason, acts.pod_failed_message = halt.failure.reason, halt.failure.message
        why = halt.failure.message or why
    return _terminate(pod, runtime, acts, why)


def _past_deadline(pod: Pod, now: float, start_time: float | None) -> bool:
    if pod.active_deadline_seconds is None or start_time is None:
        return False
    return now - start_time >= pod.active_deadline_seconds


def _sandbox_problem(pod: Pod, runtime: RuntimePod) -> str | None:
    latest = runtime.latest_sandbox()
    if latest is None:
        return "no sandbox"
    ready = [s for s in runtime.sandboxes if s.state is SandboxState.READY]
    if len(ready) > 1:
        return "more than one sandbox is ready"
    if latest.state is not SandboxState.READY:
        return "sandbox is not ready"
    if not pod.host_network and latest.ip == "":
        return "sandbox has no IP address"
    return None


def _terminate(pod: Pod, runtime: RuntimePod, acts: _Draft, why: str) -> _Draft:
    """Rule 1: kill everything alive in stages (regular first, sidecars last in reverse order),
    then stop every READY sandbox. Nothing starts."""
    acts.kill_pod = True
    acts.create_sandbox = False
    acts.next_init_container_to_start = None
    acts.init_containers_to_start = []
    acts.containers_to_start = []
    acts.ephemeral_containers_to_start = []
    acts.backoff_steps = {}
    acts.waiting = {}
    _kill_all(pod, runtime, acts, why)
    for s in sorted(runtime.sandboxes, key=lambda s: s.created_at, reverse=True):
        if s.state is SandboxState.READY and s.id not in acts.sandbox_ids_to_kill:
            acts.sandbox_ids_to_kill.append(s.id)
    return acts


def _kill_all(pod: Pod, runtime: RuntimePod, acts: _Draft, why: str) -> None:
    """Every live container joins containers_to_kill (keeping a reason already given); the
    stages are rebuilt: regular, init and unknown containers first, then sidecars in reverse."""
    sidecar_rank = {c.name: i for i, c in enumerate(pod.sidecars)}
    first: list[ContainerID] = []
    by_sidecar: dict[int, list[ContainerID]] = {}
    alive = {c.id: c.name for c in runtime.alive()}
    alive.update({cid: k.name for cid, k in acts.containers_to_kill.items()})
    for cid, name in alive.items():
        acts.containers_to_kill.setdefault(cid, KillInfo(name, KILL_POD, why))
        rank = sidecar_rank.get(name)
        if rank is None:
            first.append(cid)
        else:
            by_sidecar.setdefault(rank, []).append(cid)
    stages = [first] + [by_sidecar[r] for r in sorted(by_sidecar, reverse=True)]
    acts.kill_stages = [s for s in stages if s]


def _plan_new_sandbox(ctx: _Ctx, why: str) -> _Draft:
    """Rule 3."""
    pod, runtime, acts = ctx.pod, ctx.runtime, ctx.acts
    latest = runtime.latest_sandbox()
    acts.attempt = 0 if latest is None else latest.attempt + 1
    if runtime.containers or latest is not None:
        _terminate(pod, runtime, acts, f"pod sandbox changed: {why}")
        if latest is not None and latest.id not in acts.sandbox_ids_to_kill:
            acts.sandbox_ids_to_kill.insert(0, latest.id)
    acts.create_sandbox = True
    if pod.restart_policy is RestartPolicy.NEVER and latest is not None and runtime.containers:
        acts.create_sandbox = False
        return acts
    to_start = [
        c
        for c in pod.containers
        if not (
            pod.restart_policy is RestartPolicy.ON_FAILURE and _succeeded(runtime.latest(c.name))
        )
    ]
    initialized = any(runtime.latest(c.name) is not None for c in pod.containers)
    if initialized and not to_start:
        acts.create_sandbox = False
        return acts
    if pod.init_containers:
        _start(ctx, pod.init_containers[0])
        return acts
    if not to_start:
        acts.create_sandbox = False
        return acts
    for c in to_start:
        _start(ctx, c)
    return acts


def _succeeded(status: RuntimeContainer | None) -> bool:
    return status is not None and status.state is ContainerState.EXITED and status.exit_code == 0


def _start(ctx: _Ctx, c: Container) -> bool:
    """Queue a start of `c`, unless its newest instance exited and it is in back-off (rule 8).
    Returns whether it was queued (a container waiting out a back-off still counts as pending
    for rule 7)."""
    acts = ctx.acts
    last = ctx.runtime.latest(c.name)
    if last is not None and last.state is ContainerState.EXITED:
        key: BackOffKey = (ctx.pod.uid, c.name)
        since = last.finished_at if last.finished_at is not None else ctx.now
        if ctx.backoff.is_in_backoff(key, ctx.now, since=since) > 0:
            delay = ctx.backoff.get(key)
            acts.waiting[c.name] = Waiting(
                CRASH_LOOP_BACK_OFF, crash_loop_message(ctx.pod, c.name, delay)
            )
            return False
        acts.backoff_steps[c.name] = BackOffStep(key, since)
    if c.is_sidecar:
        acts.init_containers_to_start.append(c.name)
    elif c.name in {ic.name for ic in ctx.pod.init_containers}:
        acts.next_init_container_to_start = c.name
    else:
        acts.containers_to_start.append(c.name)
    return True


def probe_grace_seconds(pod: Pod, c: Container | None, reason: str) -> int | None:
    """Rule 10: the failed probe's terminationGracePeriodSeconds, or None for the pod's."""
    if c is None or pod.deletion_grace_period_seconds is not None:
        return None
    probe = {KILL_LIVENESS: c.liveness_probe, KILL_STARTUP: c.startup_probe}.get(reason)
    value = (probe or {}).get("terminationGracePeriodSeconds")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _kill(ctx: _Ctx, st: RuntimeContainer, reason: str, message: str) -> None:
    grace = probe_grace_seconds(ctx.pod, ctx.pod.container(st.name), reason)
    ctx.acts.containers_to_kill[st.id] = KillInfo(st.name, reason, message, grace)
    if not ctx.acts.kill_stages:
        ctx.acts.kill_stages.append([])
    ctx.acts.kill_stages[0].append(st.id)


def _running_problem(ctx: _Ctx, c: Container, st: RuntimeContainer) -> tuple[str, str] | None:
    """Why a running container must be killed: (reason, message), or None to keep it."""
    if st.hash and st.hash != c.hash:
        return KILL_SPEC_CHANGED, f"Container {c.name} definition changed"
    if st.id in ctx.probes.liveness_failed:
        return KILL_LIVENESS, f"Container {c.name} failed liveness probe"
    if st.id in ctx.probes.startup_failed:
        return KILL_STARTUP, f"Container {c.name} failed startup probe"
    return None


def _plan_ephemeral(ctx: _Ctx) -> None:
    """Rule 9: an ephemeral container with no instance anywhere starts; never again after."""
    for c in ctx.pod.ephemeral_containers:
        if ctx.runtime.latest(c.name) is None:
            ctx.acts.ephemeral_containers_to_start.append(c.name)


def _regular_created(ctx: _Ctx) -> bool:
    for c in ctx.pod.containers:
        st = ctx.cur.latest(c.name)
        if st is not None and st.state is not ContainerState.UNKNOWN:
            return True
    return False


def _plan_init(ctx: _Ctx) -> bool:
    """Rules 4 and 5; returns whether initialization is done."""
    pod = ctx.pod
    if not pod.init_containers:
        return True
    if _regular_created(ctx):
        for c in pod.sidecars:
            _tend_sidecar(ctx, c)
        return True
    seen = [i for i, c in enumerate(pod.init_containers) if ctx.cur.latest(c.name) is not None]
    last_seen = max(seen, default=-1)
    for i, c in enumerate(pod.init_containers):
        if c.is_sidecar:
            if not _tend_sidecar(ctx, c) and i >= last_seen:
                return False
        elif not _step_init(ctx, c, pruned_ok=i < last_seen):
            return False
    return True


def _tend_sidecar(ctx: _Ctx, c: Container) -> bool:
    """Keep one sidecar running; returns whether it is running and started."""
    st = ctx.cur.latest(c.name)
    if st is None or st.state is ContainerState.EXITED:
        _start(ctx, c)
        return False
    if st.state is ContainerState.UNKNOWN:
        msg = f"Init container {c.name} is in unknown state, try killing it before restart"
        _kill(ctx, st, KILL_UNKNOWN, msg)
        _start(ctx, c)
        return False
    if st.state is ContainerState.CREATED:
        return False
    problem = _running_problem(ctx, c, st)
    if problem is not None:
        _kill(ctx, st, problem[0], f"{problem[1]}, will be restarted")
        _start(ctx, c)
        return False
    return ctx.probes.started(st.id)


def _step_init(ctx: _Ctx, c: Container, *, pruned_ok: bool) -> bool:
    """One regular init container; returns whether it is done (exited 0)."""
    st = ctx.cur.latest(c.name)
    if st is None:
        if pruned_ok:
            return True
        _start(ctx, c)
        return False
    if _succeeded(st):
        return True
    if st.state in (ContainerState.CREATED, ContainerState.RUNNING):
        return False
    if ctx.pod.restart_policy is RestartPolicy.NEVER:
        ctx.acts.pod_failed = True
        ctx.acts.pod_failed_reason = INIT_CONTAINER_FAILED
        ctx.acts.pod_failed_message = (
            f"init container {c.name} exited with code {st.exit_code}"
            if st.state is ContainerState.EXITED
            else f"init container {c.name} is in unknown state"
        )
        return False
    if st.state is ContainerState.UNKNOWN:
        msg = f"Init container {c.name} is in unknown state, try killing it before restart"
        _kill(ctx, st, KILL_UNKNOWN, msg)
    _start(ctx, c)
    return False


def _plan_regular(ctx: _Ctx) -> bool:
    """Rule 6; returns False when the pod has finished (rule 7)."""
    pod = ctx.pod
    active = 0
    for c in pod.containers:
        st = ctx.cur.latest(c.name)
        if st is None or st.state is not ContainerState.RUNNING:
            if should_restart(pod, c, st):
                if st is not None and st.state is ContainerState.UNKNOWN:
                    msg = f"Container {c.name} is in unknown state, try killing it before restart"
                    _kill(ctx, st, KILL_UNKNOWN, msg)
                _start(ctx, c)
                active += 1
            continue
        problem = _running_problem(ctx, c, st)
        if problem is None:
            active += 1
            continue
        reason, message = problem
        restart = reason == KILL_SPEC_CHANGED or pod.restart_policy is not RestartPolicy.NEVER
        if restart:
            message = f"{message}, will be restarted"
            _start(ctx, c)
            active += 1
        _kill(ctx, st, reason, message)
    return active > 0
