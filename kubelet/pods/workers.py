"""Pod workers: one asyncio task per pod UID; the newest spec wins; syncing -> terminating ->
terminated. Each round plans from the cached runtime state, executes, re-reads, derives status.
What it needs from other managers (execution, events, image pulls, volumes, teardown) it names
below as narrow protocols; the composition root hands in the objects that fit them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from cri.errors import CRIError
from kube.apiserver import PODS, ApiClient, ApiError, NotFound, Preconditions
from kube.jsontypes import JsonObject
from kubelet import events as ev
from kubelet.eviction.oom import OOM_EVENT_REASON, new_oom_kills, oom_message
from kubelet.pods.admission import Rejection, admit, rejected_status
from kubelet.pods.backoff import BackOff
from kubelet.pods.decode import pod_from_api
from kubelet.pods.executor import IMAGE_PULL_BACK_OFF, Outcome
from kubelet.pods.metrics import POD_START_DURATION, POD_START_SLI_DURATION, POD_WORKER_DURATION
from kubelet.pods.model import (
    ContainerState,
    Pod,
    PodSpecError,
    PodUID,
    RuntimePod,
    SandboxState,
    Waiting,
)
from kubelet.pods.plan import CRASH_LOOP_BACK_OFF, Halt, PodActions, compute_pod_actions
from kubelet.pods.podstatus import derive_pod_status, with_others_conditions
from kubelet.pods.qos import qos_class
from kubelet.pods.seams import NoProbes, Probes
from kubelet.pods.static import is_static_pod
from kubelet.pods.status_manager import StatusManager
from kubelet.runtime.state import RuntimeCache

log = logging.getLogger(__name__)
RESYNC_SECONDS = 10.0
EVICTED = "Evicted"
NODE_SHUTDOWN = "Terminated"
"""The reason of a pod the node stopped because it shuts down (nodeshutdown's)."""
FAILURE_REASONS = ("DeadlineExceeded", EVICTED, NODE_SHUTDOWN)
TERMINAL_PHASES = ("Failed", "Succeeded")
ExtraAdmission = Callable[[JsonObject, list[JsonObject]], Rejection | None]
"""(pod, the other active pods) -> a rejection: node pressure and resource fit (agent wiring)."""


class PodExecution(Protocol):
    async def execute(
        self, pod_json: JsonObject, pod: Pod, actions: PodActions, runtime: RuntimePod
    ) -> Outcome:
        """Carry out one plan; failures come back as waiting reasons (executor.PodExecutor)."""


class PodEvents(Protocol):
    def pod_event(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        """Record an event about the pod (never blocks, never fails)."""

    def container_event(self, pod: Pod, name: str, type_: str, reason: str, message: str) -> None:
        """Record an event about one of its containers (with the container's field path)."""


class ImagePullBackOff(Protocol):
    def pull_backoff_left(self, uid: PodUID, image: str, now: float) -> float:
        """Seconds until this pod may pull the image again (0: it may now)."""


class VolumeTeardown(Protocol):
    async def teardown(self, pod_uid: str) -> None:
        """Unmount and remove the pod's volumes (its directory stays)."""


class PodTeardown(Protocol):
    async def remove_pod(self, uid: PodUID, runtime: RuntimePod) -> None:
        """Nothing of the pod runs: remove its sandboxes, volumes and directory."""


class Phase(StrEnum):
    SYNCING = "Syncing"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


@dataclass
class _Worker:
    pod: JsonObject
    """The newest object as received: the base status patches merge over; kept for the
    consumers that do not read the typed model yet (env, volumes, hooks, criconfig)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    phase: Phase = Phase.SYNCING
    task: asyncio.Task[None] | None = None
    removed: bool = False
    """The pod object is gone from the apiserver: tear down without waiting for it."""
    timer: asyncio.TimerHandle | None = None
    """The one pending delayed wake (a back-off ending, a retry)."""
    admitted: bool = False
    """Node admission (spec.os, sysctls) passed, or the pod already ran: never checked again."""
    first_seen: float = field(default_factory=time.monotonic)
    """When this agent first saw the pod (kubelet_pod_start_duration_seconds starts here)."""
    sync_type: str = "create"
    """kubelet_pod_worker_duration_seconds' operation_type of the next round: create/update/sync."""
    start_observed: bool = False
    volumes_released: bool = False
    """The pod reached a terminal phase and its volumes were torn down (before its deletion)."""
    halted: bool = False
    """Never run again: the pod was evicted, or had already ended when this agent found it."""
    failure: Waiting | None = None
    """Why the node failed the pod (Evicted and its message)."""
    kill_grace: int = 0
    """Grace period (seconds) a halted pod's containers are stopped with (soft evictions)."""
    oom_seen: set[str] = field(default_factory=set)
    """Container IDs whose OOM kill was already reported with an event."""
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    """A halted pod has nothing running any more and its Failed status is written."""

    _decoded: tuple[JsonObject, Pod | PodSpecError] | None = None

    def spec(self) -> Pod:
        """The newest object decoded, once per object received; raises PodSpecError."""
        if self._decoded is None or self._decoded[0] is not self.pod:
            try:
                self._decoded = (self.pod, pod_from_api(self.pod))
            except PodSpecError as e:
                self._decoded = (self.pod, e)
        result = self._decoded[1]
        if isinstance(result, PodSpecError):
            raise result
        return result

    def wake_in(self, delay: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, self.wake.set)


def _iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_relevant(pod: JsonObject) -> JsonObject:
    """What a pod update must change to need a sync: not the status the node itself wrote, but
    the conditions others set for its readiness gates (upstream's readiness reconcile)."""
    spec = pod.get("spec") or {}
    gates = {
        g.get("conditionType") for g in spec.get("readinessGates") or [] if isinstance(g, dict)
    }
    conditions = (pod.get("status") or {}).get("conditions") or []
    return {k: v for k, v in pod.items() if k != "status"} | {
        "metadata": {
            k: v
            for k, v in pod.get("metadata", {}).items()
            if k not in ("resourceVersion", "managedFields")
        },
        "gateConditions": [
            (c.get("type"), c.get("status"))
            for c in conditions
            if isinstance(c, dict) and c.get("type") in gates
        ],
    }


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _ref(pod: JsonObject) -> str:
    m = pod.get("metadata", {})
    return f"{m.get('namespace')}/{m.get('name')} uid={m.get('uid')}"


def _running(runtime: RuntimePod) -> bool:
    return any(
        c.state in (ContainerState.RUNNING, ContainerState.CREATED) for c in runtime.containers
    ) or any(s.state == SandboxState.READY for s in runtime.sandboxes)


class PodWorkers:
    """Owns every pod's worker task; the composition root feeds it pod updates and PLEG wakes."""

    def __init__(
        self,
        *,
        client: ApiClient,
        cache: RuntimeCache,
        executor: PodExecution,
        events: PodEvents,
        images: ImagePullBackOff,
        volumes: VolumeTeardown,
        teardown: PodTeardown,
        status: StatusManager,
        backoff: BackOff,
        host_ips: Callable[[], tuple[str, ...]],
        resync: float = RESYNC_SECONDS,
        probes: Probes | None = None,
        allowed_unsafe_sysctls: Sequence[str] = (),
        admission: ExtraAdmission | None = None,
    ) -> None:
        self._probes: Probes = probes or NoProbes()
        self._client = client
        self._cache = cache
        self._exec = executor
        self._events = events
        self._images = images
        self._volumes = volumes
        self._teardown = teardown
        self._status = status
        self._backoff = backoff
        self._host_ips = host_ips
        self._resync = resync
        self._workers: dict[PodUID, _Worker] = {}
        self._done: set[PodUID] = set()
        """UIDs torn down for good: never started again (a pod UID is never reused)."""
        self._unsafe_sysctls = tuple(allowed_unsafe_sysctls)
        self._admission = admission

    # ---- inputs ---------------------------------------------------------------------------
    def update(self, pod: JsonObject) -> None:
        uid = PodUID(pod["metadata"]["uid"])
        if uid in self._done and is_static_pod(pod):
            self._done.discard(uid)  # a static pod comes back with the same UID (as upstream)
        if uid in self._done:
            return
        w = self._workers.get(uid)
        if w is None:
            w = self._workers[uid] = _Worker(pod)
            w.task = asyncio.create_task(self._run(uid, w), name=f"pod-{_ref(pod)}")
            w.wake.set()
            return
        old, w.pod = w.pod, pod
        if _node_relevant(old) != _node_relevant(pod):
            if w.sync_type == "sync":
                w.sync_type = "update"
            w.wake.set()

    def remove(self, uid: PodUID) -> None:
        w = self._workers.get(uid)
        if w is not None:
            w.removed = True
            w.wake.set()

    def wake(self, uid: PodUID) -> None:
        w = self._workers.get(uid)
        if w is not None:
            w.wake.set()

    def known(self) -> set[PodUID]:
        return set(self._workers)

    def pods(self) -> list[JsonObject]:
        """The newest spec of every pod this node runs or is still tearing down."""
        return [w.pod for w in self._workers.values()]

    def active_pods(self) -> list[JsonObject]:
        """Pods admitted here that may still run: not halted, not terminal, not terminating."""
        out = []
        for uid, w in self._workers.items():
            phase = (self._status.get(uid) or w.pod.get("status") or {}).get("phase")
            running = w.admitted and not w.halted and w.phase == Phase.SYNCING
            if running and phase not in TERMINAL_PHASES:
                out.append(w.pod)
        return out

    def evict(self, uid: PodUID, message: str, grace_seconds: int = 0) -> None:
        """Kill the pod's containers (with this grace period) and fail it with reason Evicted;
        the object stays."""
        self.halt(uid, Waiting(EVICTED, message), grace_seconds)

    def halt(self, uid: PodUID, failure: Waiting, grace_seconds: int) -> asyncio.Event | None:
        """Kill the pod's containers (preStop hooks first, this grace period) and fail it with
        `failure`'s reason and message; the object stays. The event is set once nothing of it
        runs and that status is written (None: the pod is not known here)."""
        w = self._workers.get(uid)
        if w is None:
            return None
        if not w.halted:
            w.halted, w.failure = True, failure
            w.kill_grace = max(0, grace_seconds)
        w.wake.set()
        return w.stopped

    def keeps_content(self, uid: str) -> bool:
        """Upstream's !ShouldPodContentBeRemoved: the pod is known here and was not evicted, so
        its newest dead containers stay (logs --previous, the status's lastState)."""
        w = self._workers.get(PodUID(uid))
        return w is not None and not (w.failure is not None and w.failure.reason == EVICTED)

    def could_have_running_containers(self, uid: PodUID) -> bool:
        w = self._workers.get(uid)
        return w is not None and w.phase != Phase.TERMINATED

    # ---- the worker ----------------------------------------------------------------------
    async def _run(self, uid: PodUID, w: _Worker) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.wake.wait(), timeout=self._resync)
            w.wake.clear()
            try:
                finished = await self._timed_sync(uid, w)
            except asyncio.CancelledError:
                raise
            except (CRIError, ApiError) as e:
                log.warning("pod %s: sync failed: %s", _ref(w.pod), e)
                await asyncio.sleep(1)
                w.wake.set()
                continue
            except Exception:
                log.exception("pod %s: sync crashed", _ref(w.pod))
                await asyncio.sleep(1)
                continue
            if finished:
                self._workers.pop(uid, None)
                self._done.add(uid)
                self._status.forget(uid)
                return

    def _transition(self, w: _Worker, to: Phase) -> None:
        if w.phase != to:
            log.info("pod=%s %s -> %s", _ref(w.pod), w.phase, to)
            w.phase = to

    async def _timed_sync(self, uid: PodUID, w: _Worker) -> bool:
        """_sync, observed as kubelet_pod_worker_duration_seconds{operation_type}."""
        op = "kill" if w.removed or w.phase != Phase.SYNCING else w.sync_type
        start = time.monotonic()
        try:
            return await self._sync(uid, w)
        finally:
            POD_WORKER_DURATION.labels(operation_type=op).observe(time.monotonic() - start)
            if op != "kill":
                w.sync_type = "sync"

    def _observe_start(
        self, w: _Worker, pod: Pod, runtime: RuntimePod, previous: JsonObject
    ) -> None:
        """The first time all of the pod's containers run: pod start duration (since this agent
        saw it) and the SLI duration (since its creation). Pods that already ran before (a
        restarted agent adopting them) are not counted, as upstream counts only Pending pods."""
        if w.start_observed or w.phase != Phase.SYNCING or not pod.containers:
            return
        for c in pod.containers:
            rc = runtime.latest(c.name)
            if rc is None or rc.state != ContainerState.RUNNING:
                return
        w.start_observed = True
        if previous.get("phase", "Pending") != "Pending":
            return
        POD_START_DURATION.observe(time.monotonic() - w.first_seen)
        created = _parse_time(w.pod.get("metadata", {}).get("creationTimestamp"))
        if created is not None:
            POD_START_SLI_DURATION.observe(max(0.0, time.time() - created))

    async def _sync(self, uid: PodUID, w: _Worker) -> bool:
        """One round; True when the pod is fully torn down and its worker may end."""
        pod_json = w.pod
        try:
            pod = w.spec()
        except PodSpecError as e:
            log.warning("pod %s: %s", _ref(pod_json), e)
            return False
        if w.removed and pod.deletion_timestamp is None:
            pod = _as_deleted(pod)
        if pod.is_deleted:
            self._transition(w, Phase.TERMINATING)
        runtime = await self._cache.refresh(uid)
        if not w.admitted and (pod_json.get("status") or {}).get("phase") in TERMINAL_PHASES:
            w.admitted = w.halted = True  # it ended before this agent saw it: never rerun
        if not w.admitted:
            rejection = self._admit(pod, pod_json, runtime)
            if rejection is not None:
                return await self._reject(w, pod, rejection)
            w.admitted = True
        status_json = self._status.get(uid) or pod_json.get("status") or {}
        probe_results, _ = self._probes.results(uid)
        actions = compute_pod_actions(
            pod,
            runtime,
            now=time.time(),
            backoff=self._backoff,
            probe_results=probe_results,
            start_time=_parse_time(status_json.get("startTime")),
            halt=Halt(w.kill_grace, w.failure) if w.halted else None,
        )
        outcome = Outcome()
        for name, waiting in actions.waiting.items():
            if waiting.reason == CRASH_LOOP_BACK_OFF:
                self._events.container_event(
                    pod,
                    name,
                    ev.WARNING,
                    ev.BACK_OFF,
                    f"Back-off restarting failed container {name} in pod "
                    f"{pod.name}_{pod.namespace}({pod.uid})",
                )
        if not actions.is_noop:
            log.info("pod=%s actions: %s", _ref(pod_json), actions.describe())
            outcome = await self._exec.execute(pod_json, pod, actions, runtime)
            runtime = await self._cache.refresh(uid)
        self._probes.sync(pod, runtime)
        for c in new_oom_kills(runtime.containers, w.oom_seen):
            self._events.container_event(pod, c.name, ev.WARNING, OOM_EVENT_REASON, oom_message(c))
        if not (w.halted and status_json.get("phase") in TERMINAL_PHASES and not _running(runtime)):
            # a halted pod's final status stays as written (its containers may be collected)
            previous = with_others_conditions(status_json, pod_json.get("status") or {})
            self._derive(pod, pod_json, runtime, actions, outcome, previous)
        self._observe_start(w, pod, runtime, status_json)
        if w.halted and not w.stopped.is_set() and not _running(runtime):
            await self._status.flush(uid)
            w.stopped.set()
        await self._release_volumes(uid, w, runtime)
        if w.phase == Phase.TERMINATING and not _running(runtime):
            return await self._finish(uid, w, pod_json, runtime)
        delay = self._retry_delay(pod, runtime, actions, outcome)
        if delay is not None:
            w.wake_in(delay)
        return False

    # ---- admission (security context work) ----------------------------------------------
    def _admit(self, pod: Pod, pod_json: JsonObject, runtime: RuntimePod) -> Rejection | None:
        """Admission of a pod that never ran here (nothing in the runtime, not deleted)."""
        if pod.is_deleted or runtime.sandboxes or runtime.containers:
            return None
        rejection = admit(pod, allowed_unsafe_sysctls=self._unsafe_sysctls)
        if rejection is None and self._admission is not None:
            rejection = self._admission(pod_json, self.active_pods())
        return rejection

    async def _reject(self, w: _Worker, pod: Pod, rejection: Rejection) -> bool:
        """Upstream's rejectPod: an event, a Failed status, and nothing ever runs."""
        log.info("pod=%s rejected: %s: %s", _ref(w.pod), rejection.reason, rejection.message)
        self._events.pod_event(pod, ev.WARNING, rejection.reason, rejection.message)
        status = rejected_status(rejection, qos_class(pod))
        self._status.set(namespace=pod.namespace, name=pod.name, uid=pod.uid, status=status)
        await self._status.flush(pod.uid)
        self._transition(w, Phase.TERMINATED)
        return True

    def _retry_delay(
        self, pod: Pod, runtime: RuntimePod, actions: PodActions, outcome: Outcome
    ) -> float | None:
        """When to sync again: as soon as a back-off ends, else after a failed step, 10 s."""
        now, delays = time.time(), []
        for name, waiting in {**actions.waiting, **outcome.waiting}.items():
            if waiting.reason == CRASH_LOOP_BACK_OFF:
                last = runtime.latest(name)
                since = last.finished_at if last is not None else None
                delays.append(self._backoff.is_in_backoff((pod.uid, name), now, since=since))
            elif waiting.reason == IMAGE_PULL_BACK_OFF:
                c = pod.container(name)
                if c is not None:
                    delays.append(self._images.pull_backoff_left(pod.uid, c.image, now))
            else:
                delays.append(self._resync)
        if outcome.sandbox_error:
            delays.append(self._resync)
        return min(delays) + 0.05 if delays else None

    def _derive(
        self,
        pod: Pod,
        pod_json: JsonObject,
        runtime: RuntimePod,
        actions: PodActions,
        outcome: Outcome,
        previous: JsonObject,
    ) -> None:
        waiting: dict[str, Waiting] = {**actions.waiting, **outcome.waiting}
        failure = (
            Waiting(actions.pod_failed_reason, actions.pod_failed_message)
            if actions.pod_failed and actions.pod_failed_reason in FAILURE_REASONS
            else None
        )
        probe_results, readiness = self._probes.results(pod.uid)
        status = derive_pod_status(
            pod,
            runtime,
            previous_status=previous,
            waiting_reasons=waiting,
            readiness=readiness,
            probe_results=probe_results,
            now_iso=_iso_now(),
            host_ips=self._host_ips(),
            failure=failure,
        )
        self._status.set(namespace=pod.namespace, name=pod.name, uid=pod.uid, status=status)

    async def _release_volumes(self, uid: PodUID, w: _Worker, runtime: RuntimePod) -> None:
        """A pod in a terminal phase (Succeeded, Failed) with nothing left running has its
        volumes unmounted and removed at once, not only when its object is deleted, as
        upstream's volume manager does for terminated pods; its directory stays until then."""
        if w.volumes_released or w.phase != Phase.SYNCING or _running(runtime):
            return
        if (self._status.get(uid) or {}).get("phase") not in ("Succeeded", "Failed"):
            return
        w.volumes_released = True
        await self._volumes.teardown(uid)

    async def _finish(
        self, uid: PodUID, w: _Worker, pod_json: JsonObject, runtime: RuntimePod
    ) -> bool:
        """Nothing runs any more: write the last status, delete the object, free the runtime."""
        self._transition(w, Phase.TERMINATED)
        meta = pod_json["metadata"]
        await self._status.flush(uid)
        if not w.removed:
            with contextlib.suppress(NotFound):
                await self._client.delete(
                    PODS,
                    meta["name"],
                    namespace=meta["namespace"],
                    grace_period_seconds=0,
                    preconditions=Preconditions(uid=uid),
                )
        self._probes.forget(uid)
        await self._teardown.remove_pod(uid, runtime)
        log.info("pod=%s torn down", _ref(pod_json))
        return True


def _as_deleted(pod: Pod) -> Pod:
    """The pod as if deleted now with no grace: its object vanished (a force delete)."""
    return replace(pod, deletion_timestamp=_iso_now(), deletion_grace_period_seconds=0)
