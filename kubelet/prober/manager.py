"""The probe manager (the pod workers' `Probes`): one worker task per (pod, container instance,
probe kind), results cached per pod, the pod's worker woken when a result changes, events.
It must not kill or restart containers (the planner does, from the results) nor write status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from kubelet import events as ev
from kubelet.pods.model import (
    Container,
    ContainerID,
    ContainerState,
    Pod,
    PodUID,
    ProbeResults,
    RuntimeContainer,
    RuntimePod,
)
from kubelet.prober.execprobe import ExecRuntime
from kubelet.prober.results import Outcome, Result, initial_value
from kubelet.prober.runner import Runner, Target
from kubelet.prober.spec import (
    ExecAction,
    Kind,
    ProbeSpec,
    ProbeSpecError,
    container_probes,
    parse_probe,
)
from kubelet.prober.worker import Clock, ProbeRunner, ProbeWorker, SystemClock, WorkerHooks

log = logging.getLogger(__name__)
UNHEALTHY = "Unhealthy"
PROBE_WARNING = "ProbeWarning"
MAX_DETAIL = 1024
Key = tuple[ContainerID, Kind]


class EventSink(Protocol):
    def record(self, ev: ev.PodEvent) -> None: ...


@dataclass
class _Entry:
    spec: ProbeSpec
    worker: ProbeWorker
    task: asyncio.Task[None]


@dataclass
class _PodProbes:
    """Everything the manager holds for one pod."""

    uid: PodUID
    namespace: str
    name: str
    entries: dict[Key, _Entry] = field(default_factory=dict)
    field_paths: dict[ContainerID, str] = field(default_factory=dict)
    running: set[ContainerID] = field(default_factory=set)
    readiness: dict[ContainerID, bool] = field(default_factory=dict)
    started: dict[ContainerID, bool] = field(default_factory=dict)
    liveness_failed: set[ContainerID] = field(default_factory=set)
    startup_failed: set[ContainerID] = field(default_factory=set)
    bad_specs: set[Key] = field(default_factory=set)
    """Probes that could not be parsed (logged once per container instance)."""


@dataclass(frozen=True)
class _Want:
    spec: ProbeSpec
    container: Container
    status: RuntimeContainer
    init: bool


def _pod_ip(pod: Pod, runtime: RuntimePod) -> str:
    sandbox = runtime.latest_sandbox()
    if sandbox is not None and sandbox.ip:
        return sandbox.ip
    return "127.0.0.1" if pod.host_network else ""


class ProbeManager:
    """Implements kubelet.pods.seams.Probes."""

    def __init__(
        self,
        *,
        runtime: ExecRuntime,
        recorder: EventSink,
        wake: Callable[[PodUID], None],
        clock: Clock | None = None,
        runner: ProbeRunner | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._recorder = recorder
        self._wake = wake
        self._clock: Clock = clock or SystemClock()
        self._own_runner: Runner | None = None
        if runner is None:
            runner = self._own_runner = Runner(runtime)
        self._runner = runner
        self._born = self._clock.now()
        self._rand = rand
        self._pods: dict[PodUID, _PodProbes] = {}

    # ---- the Probes protocol -----------------------------------------------------------------
    def sync(self, pod: Pod, runtime: RuntimePod) -> None:
        """Start workers for running containers' probes; stop those of gone containers. A
        terminating pod's probes all stop (liveness and startup failures are dropped)."""
        state = self._pods.get(pod.uid)
        if state is None:
            if pod.is_deleted:
                return
            state = self._pods[pod.uid] = _PodProbes(pod.uid, pod.namespace, pod.name)
        if pod.is_deleted:
            self._stop(state, set(state.entries))
            state.liveness_failed.clear()
            state.startup_failed.clear()
            return
        wanted = dict(self._wanted(state, pod, runtime))
        stale = {k for k, e in state.entries.items() if k not in wanted or wanted[k].spec != e.spec}
        self._stop(state, stale)
        state.running = {s.status.id for s in wanted.values()} | self._running_ids(pod, runtime)
        self._prune(state)
        for key, want in wanted.items():
            if key not in state.entries:
                self._start(state, key, want, _pod_ip(pod, runtime))

    def results(self, uid: str) -> tuple[ProbeResults, dict[ContainerID, bool]]:
        state = self._pods.get(PodUID(uid))
        if state is None:
            return ProbeResults(), {}
        readiness = dict.fromkeys(state.running, True) | state.readiness
        return (
            ProbeResults(
                liveness_failed=frozenset(state.liveness_failed),
                startup_failed=frozenset(state.startup_failed),
                not_started=frozenset(c for c, ok in state.started.items() if not ok),
            ),
            readiness,
        )

    def forget(self, uid: str) -> None:
        state = self._pods.pop(PodUID(uid), None)
        if state is not None:
            self._stop(state, set(state.entries))

    async def close(self) -> None:
        """Stop every worker and the shared HTTP client."""
        for uid in list(self._pods):
            self.forget(uid)
        if self._own_runner is not None:
            await self._own_runner.close()

    # ---- workers -----------------------------------------------------------------------------
    @staticmethod
    def _wanted(state: _PodProbes, pod: Pod, runtime: RuntimePod) -> Iterator[tuple[Key, _Want]]:
        """Every probe of every running container (sidecars and regular containers)."""
        sandbox = runtime.latest_sandbox()
        current = runtime.in_sandbox(sandbox.id if sandbox else None)
        sidecars = {c.name for c in pod.sidecars}
        for c in (*pod.sidecars, *pod.containers):
            st = current.latest(c.name)
            if st is None or st.state is not ContainerState.RUNNING:
                continue
            for kind, raw in container_probes(c).items():
                try:
                    spec = parse_probe(kind, raw)
                except ProbeSpecError as e:
                    if (st.id, kind) not in state.bad_specs:
                        state.bad_specs.add((st.id, kind))
                        log.warning("pod %s container %s: %s probe: %s", pod.ref, c.name, kind, e)
                    continue
                yield (st.id, kind), _Want(spec, c, st, c.name in sidecars)

    @staticmethod
    def _running_ids(pod: Pod, runtime: RuntimePod) -> set[ContainerID]:
        sandbox = runtime.latest_sandbox()
        current = runtime.in_sandbox(sandbox.id if sandbox else None)
        out = set()
        for c in (*pod.sidecars, *pod.containers):
            st = current.latest(c.name)
            if st is not None and st.state is ContainerState.RUNNING:
                out.add(st.id)
        return out

    def _start(self, state: _PodProbes, key: Key, want: _Want, pod_ip: str) -> None:
        cid, kind = key
        state.field_paths[cid] = ev.container_field_path(want.container.name, init=want.init)
        if kind is Kind.READINESS:
            state.readiness.setdefault(cid, initial_value(kind))
        if kind is Kind.STARTUP:
            state.started.setdefault(cid, initial_value(kind))
        if not pod_ip and _needs_ip(want.spec):
            return  # the pod's IP is not known yet: the next sync starts it
        started_at = want.status.started_at
        jitter = 0.0
        if self._rand is not None and started_at is not None and started_at < self._born:
            jitter = self._rand() * want.spec.period  # adopted after a restart: spread them
        worker = ProbeWorker(
            want.spec,
            Target(cid, pod_ip, want.container.ports),
            started_at=started_at,
            runner=self._runner,
            clock=self._clock,
            hooks=WorkerHooks(
                started=lambda: state.started.get(cid, True),
                verdict=lambda ok: self._verdict(state, cid, kind, ok),
                outcome=lambda out: self._outcome(state, cid, kind, out),
            ),
            jitter=jitter,
        )
        task = asyncio.create_task(worker.run(), name=f"probe-{state.namespace}/{state.name}")
        task.add_done_callback(lambda t: _log_end(t, state, want.container.name, kind))
        state.entries[key] = _Entry(want.spec, worker, task)

    @staticmethod
    def _stop(state: _PodProbes, keys: set[Key]) -> None:
        for key in keys:
            entry = state.entries.pop(key, None)
            if entry is not None:
                entry.task.cancel()

    @staticmethod
    def _prune(state: _PodProbes) -> None:
        """Forget the results of container instances that no longer run."""
        for key in [k for k in state.entries if k[0] not in state.running]:
            state.entries.pop(key).task.cancel()
        keep = state.running
        state.readiness = {c: v for c, v in state.readiness.items() if c in keep}
        state.started = {c: v for c, v in state.started.items() if c in keep}
        state.liveness_failed &= keep
        state.startup_failed &= keep
        state.field_paths = {c: v for c, v in state.field_paths.items() if c in keep}
        state.bad_specs = {k for k in state.bad_specs if k[0] in keep}

    # ---- what workers report -----------------------------------------------------------------
    def _verdict(self, state: _PodProbes, cid: ContainerID, kind: Kind, ok: bool) -> None:
        if self._pods.get(state.uid) is not state or cid not in state.running:
            return
        before = self.results(state.uid)
        if kind is Kind.READINESS:
            state.readiness[cid] = ok
        elif kind is Kind.STARTUP:
            state.started[cid] = ok
            (state.startup_failed.discard if ok else state.startup_failed.add)(cid)
            if ok:
                for k in (Kind.LIVENESS, Kind.READINESS):
                    entry = state.entries.get((cid, k))
                    if entry is not None:
                        entry.worker.trigger()
        else:
            (state.liveness_failed.discard if ok else state.liveness_failed.add)(cid)
        if self.results(state.uid) != before:
            self._wake(state.uid)

    def _outcome(self, state: _PodProbes, cid: ContainerID, kind: Kind, out: Outcome) -> None:
        if out.result is Result.SUCCESS:
            return
        detail = out.detail[:MAX_DETAIL]
        if out.result is Result.FAILURE:
            reason, message = UNHEALTHY, f"{kind} probe failed: {detail}"
        elif out.result is Result.WARNING:
            reason, message = PROBE_WARNING, f"{kind} probe warning: {detail}"
        else:
            reason, message = UNHEALTHY, f"{kind} probe errored: {detail}"
        log.info("pod=%s/%s container=%s %s", state.namespace, state.name, cid[:12], message)
        self._recorder.record(
            ev.PodEvent(
                state.namespace,
                state.name,
                state.uid,
                ev.WARNING,
                reason,
                message,
                state.field_paths.get(cid, ""),
            )
        )


def _needs_ip(spec: ProbeSpec) -> bool:
    return not isinstance(spec.handler, ExecAction) and not getattr(spec.handler, "host", "")


def _log_end(task: asyncio.Task[None], state: _PodProbes, container: str, kind: Kind) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error(
            "pod %s/%s container %s: %s probe worker crashed",
            state.namespace,
            state.name,
            container,
            kind,
            exc_info=exc,
        )
