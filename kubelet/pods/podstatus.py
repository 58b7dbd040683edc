"""Pod status derivation: the status fields the node owns (phase, conditions, container statuses,
IPs, startTime, qosClass) as a plain API-shaped dict, from spec + runtime. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from kube.jsontypes import JsonMap, JsonObject
from kubelet.pods.model import (
    NO_PROBES,
    Container,
    ContainerID,
    ContainerState,
    Pod,
    ProbeResults,
    RestartPolicy,
    RuntimeContainer,
    RuntimePod,
    SandboxState,
    Waiting,
)
from kubelet.pods.plan import should_restart
from kubelet.pods.qos import qos_class

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
OWNED_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
WRITTEN_CONDITIONS = (*OWNED_CONDITIONS, "PodScheduled", "DisruptionTarget")
"""The condition types the node ever writes; every other one (readiness gates...) is another
writer's, read from the apiserver and never written back (upstream's mergePodStatus)."""


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as RFC 3339 (UTC, whole seconds), as the API writes times."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_list(names: Sequence[str]) -> str:
    """A list of names the way Go's %s prints a []string: [a b]."""
    return "[" + " ".join(names) + "]"


# ---------------------------------------------------------------- container statuses


def _terminated(c: RuntimeContainer, runtime_name: str) -> JsonObject:
    t: JsonObject = {
        "exitCode": c.exit_code,
        "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
        "startedAt": iso(c.started_at),
        "finishedAt": iso(c.finished_at),
        "containerID": f"{runtime_name}://{c.id}",
    }
    if c.message:
        t["message"] = c.message
    return t


def _state(c: RuntimeContainer, runtime_name: str) -> JsonObject:
    if c.state is ContainerState.RUNNING:
        return {"running": {"startedAt": iso(c.started_at)}}
    if c.state is ContainerState.EXITED:
        return {"terminated": _terminated(c, runtime_name)}
    if c.state is ContainerState.CREATED:
        return {"waiting": {"reason": CONTAINER_CREATING}}
    return {"waiting": {}}


def _waiting(w: Waiting) -> JsonObject:
    d: JsonObject = {"reason": w.reason}
    if w.message:
        d["message"] = w.message
    return {"waiting": d}


def _is_ready(
    c: Container,
    cur: RuntimeContainer,
    started: bool,
    readiness: Mapping[ContainerID, bool],
    is_init: bool,
) -> bool:
    if is_init and not c.is_sidecar:
        return cur.state is ContainerState.EXITED and cur.exit_code == 0
    if not started:
        return False
    return c.readiness_probe is None or readiness.get(cur.id, False)


class _StatusInputs:
    """What every container status needs besides its own container."""

    def __init__(
        self,
        pod: Pod,
        runtime: RuntimePod,
        waiting: Mapping[str, Waiting],
        readiness: Mapping[ContainerID, bool],
        probes: ProbeResults,
        runtime_name: str,
    ) -> None:
        self.pod = pod
        self.runtime = runtime
        self.waiting = waiting
        self.readiness = readiness
        self.probes = probes
        self.runtime_name = runtime_name


def container_status(
    inp: _StatusInputs, c: Container, *, is_init: bool, default: str
) -> JsonObject:
    """One entry of containerStatuses / initContainerStatuses."""
    history = inp.runtime.history(c.name)
    cur = history[0] if history else None
    st: JsonObject = {
        "name": c.name,
        "state": {"waiting": {"reason": default}},
        "lastState": {},
        "ready": False,
        "restartCount": 0,
        "image": c.image,
        "imageID": "",
        "started": False,
    }
    if cur is not None:
        started = cur.state is ContainerState.RUNNING and inp.probes.started(cur.id)
        st.update(
            state=_state(cur, inp.runtime_name),
            ready=_is_ready(c, cur, started, inp.readiness, is_init),
            restartCount=cur.restart_count,
            image=cur.image or c.image,
            imageID=cur.image_ref,
            containerID=f"{inp.runtime_name}://{cur.id}",
            started=started,
        )
        if len(history) > 1 and history[1].state is ContainerState.EXITED:
            st["lastState"] = {"terminated": _terminated(history[1], inp.runtime_name)}
    w = inp.waiting.get(c.name)
    if w is not None and _takes_waiting(inp.pod, c, cur, is_init):
        if cur is not None and cur.state is ContainerState.EXITED:
            st["lastState"] = {"terminated": _terminated(cur, inp.runtime_name)}
        st["state"] = _waiting(w)
        st["ready"] = False
    return st


def _takes_waiting(pod: Pod, c: Container, cur: RuntimeContainer | None, is_init: bool) -> bool:
    """A worker's waiting reason shows only on a container that will be (re)started."""
    if cur is None:
        return not pod.is_deleted
    if c in pod.ephemeral_containers:
        return False  # never restarted
    if is_init and not c.is_sidecar and cur.state is ContainerState.EXITED and cur.exit_code == 0:
        return False
    return should_restart(pod, c, cur)


def ephemeral_container_statuses(inp: _StatusInputs) -> list[JsonObject]:
    """ephemeralContainerStatuses sorted by name, as upstream: never ready (no probes, not part
    of readiness) and without `started`, which upstream sets on regular containers only."""
    out = []
    for c in inp.pod.ephemeral_containers:
        st = container_status(inp, c, is_init=False, default=CONTAINER_CREATING)
        st.pop("started", None)
        st["ready"] = False
        out.append(st)
    out.sort(key=lambda s: str(s["name"]))
    return out


def _app_created(pod: Pod, runtime: RuntimePod) -> bool:
    """A regular container exists in the current sandbox: initialization is done (as planned)."""
    sandbox = runtime.latest_sandbox()
    cur = runtime.in_sandbox(sandbox.id if sandbox else None)
    return any(cur.latest(c.name) is not None for c in pod.containers)


def _init_done(pod: Pod, runtime: RuntimePod, probes: ProbeResults) -> bool:
    if _app_created(pod, runtime):
        return True
    for c in pod.init_containers:
        cur = runtime.latest(c.name)
        if cur is None:
            return False
        if c.is_sidecar:
            if cur.state is not ContainerState.RUNNING or not probes.started(cur.id):
                return False
        elif cur.state is not ContainerState.EXITED or cur.exit_code != 0:
            return False
    return True


# ---------------------------------------------------------------- phase


def _last_terminated(st: JsonObject) -> JsonObject | None:
    t = st.get("lastState", {}).get("terminated")
    return t if isinstance(t, dict) else None


def _init_counts(pod: Pod, by_name: Mapping[str, JsonObject]) -> tuple[int, int, int]:
    """(pending regular init, failed regular init, pending sidecars), as upstream counts."""
    pending = failed = pending_sidecars = 0
    for c in pod.init_containers:
        st = by_name.get(c.name)
        state = st["state"] if st else {}
        if c.is_sidecar:
            if "running" in state:
                pending_sidecars += 0 if st and st.get("started") else 1
            elif "terminated" not in state and not (st and _last_terminated(st)):
                pending_sidecars += 1
            continue
        if "terminated" in state:
            failed += 1 if state["terminated"]["exitCode"] != 0 else 0
        elif "waiting" in state and st and _last_terminated(st):
            last = _last_terminated(st)
            failed += 1 if last and last["exitCode"] != 0 else 0
        else:
            pending += 1
    return pending, failed, pending_sidecars


def _app_counts(pod: Pod, by_name: Mapping[str, JsonObject]) -> dict[str, int]:
    n = dict.fromkeys(("unknown", "running", "waiting", "stopped", "succeeded"), 0)
    for c in pod.sidecars:
        state = by_name.get(c.name, {}).get("state", {})
        if "running" in state:
            n["running"] += 1
        elif "waiting" in state and not _last_terminated(by_name[c.name]):
            n["waiting"] += 1
        elif not state:
            n["unknown"] += 1
    for c in pod.containers:
        st = by_name.get(c.name)
        state = st["state"] if st else {}
        if "running" in state:
            n["running"] += 1
        elif "terminated" in state:
            n["stopped"] += 1
            n["succeeded"] += 1 if state["terminated"]["exitCode"] == 0 else 0
        elif "waiting" in state and st is not None:
            n["stopped" if _last_terminated(st) else "waiting"] += 1
        else:
            n["unknown"] += 1
    return n


def pod_phase(
    pod: Pod, init_statuses: Sequence[JsonObject], statuses: Sequence[JsonObject], *, terminal: bool
) -> str:
    """Upstream's getPhase over API-shaped container statuses."""
    by_name = {s["name"]: s for s in (*init_statuses, *statuses)}
    pending_init, failed_init, pending_sidecars = _init_counts(pod, by_name)
    n = _app_counts(pod, by_name)
    if failed_init and pod.restart_policy is RestartPolicy.NEVER:
        return FAILED
    if pending_init or pending_sidecars or n["waiting"]:
        return PENDING
    if n["running"] and not n["unknown"]:
        return RUNNING
    if n["running"] or not n["stopped"] or n["unknown"]:
        return PENDING
    all_ok = n["stopped"] == n["succeeded"]
    if terminal:
        return SUCCEEDED if all_ok else FAILED
    if pod.restart_policy is RestartPolicy.ALWAYS:
        return RUNNING
    if all_ok:
        return SUCCEEDED
    return FAILED if pod.restart_policy is RestartPolicy.NEVER else RUNNING


# ---------------------------------------------------------------- conditions


def _cond(
    ctype: str,
    ok: bool,
    prev: Mapping[str, JsonObject],
    now_iso: str,
    reason: str = "",
    msg: str = "",
) -> JsonObject:
    status = "True" if ok else "False"
    old = prev.get(ctype)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    c: JsonObject = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since or now_iso,
    }
    if reason:
        c["reason"] = reason
    if msg:
        c["message"] = msg
    return c


def _initialized(
    pod: Pod, runtime: RuntimePod, init_statuses: Sequence[JsonObject], phase: str
) -> tuple[bool, str, str]:
    if not pod.init_containers:
        return True, "", ""
    if phase == SUCCEEDED:
        return True, "PodCompleted", ""
    if _app_created(pod, runtime):
        return True, "", ""
    incomplete = []
    for c, st in zip(pod.init_containers, init_statuses, strict=True):
        term = st["state"].get("terminated")
        if c.is_sidecar:
            done = bool(st.get("started"))
        else:
            done = term is not None and term["exitCode"] == 0
        if not done:
            incomplete.append(c.name)
    if incomplete:
        return (
            False,
            "ContainersNotInitialized",
            f"containers with incomplete status: {go_list(incomplete)}",
        )
    return True, "", ""


def _containers_ready(
    pod: Pod, init_statuses: Sequence[JsonObject], statuses: Sequence[JsonObject], phase: str
) -> tuple[bool, str, str]:
    if phase == SUCCEEDED:
        return False, "PodCompleted", ""
    if phase == FAILED:
        return False, "PodFailed", ""
    sidecars = {c.name for c in pod.sidecars}
    unready = [s["name"] for s in init_statuses if s["name"] in sidecars and not s["ready"]]
    unready += [s["name"] for s in statuses if not s["ready"]]
    if unready:
        return False, "ContainersNotReady", f"containers with unready status: {go_list(unready)}"
    return True, "", ""


def _gates_message(pod: Pod, prev: Mapping[str, JsonObject]) -> str:
    msgs = []
    for gate in pod.readiness_gates:
        c = prev.get(gate)
        if c is None:
            msgs.append(f'corresponding condition of pod readiness gate "{gate}" does not exist.')
        elif c.get("status") != "True":
            msgs.append(
                f'the status of pod readiness gate "{gate}" is not "True", but {c.get("status")}'
            )
    return ", ".join(msgs)


def with_others_conditions(node_status: JsonMap, api_status: JsonMap) -> JsonObject:
    """`node_status` whose conditions of types the node does not write (readiness gates set by
    controllers, a DisruptionTarget the node did not add) are the apiserver's current ones."""
    mine = [
        c
        for c in node_status.get("conditions") or []
        if isinstance(c, dict) and c.get("type") in WRITTEN_CONDITIONS
    ]
    have = {c["type"] for c in mine}
    others = [
        c
        for c in api_status.get("conditions") or []
        if isinstance(c, dict)
        and c.get("type") not in have
        and c.get("type") not in OWNED_CONDITIONS
    ]
    return {**node_status, "conditions": mine + others}


def written_conditions(conditions: Sequence[JsonObject]) -> list[JsonObject]:
    """The conditions a status write may carry: WRITTEN_CONDITIONS only, so a stale copy of
    another writer's condition never overwrites it (a strategic merge keeps the others)."""
    return [c for c in conditions if c.get("type") in WRITTEN_CONDITIONS]


def pod_conditions(
    pod: Pod,
    runtime: RuntimePod,
    init_statuses: Sequence[JsonObject],
    statuses: Sequence[JsonObject],
    *,
    phase: str,
    previous: Sequence[JsonObject],
    now_iso: str,
) -> list[JsonObject]:
    """Kubelet-owned conditions with upstream reasons; PodScheduled and conditions owned by
    others are kept from `previous` (PodScheduled True when absent)."""
    prev = {c["type"]: c for c in previous if isinstance(c, dict) and "type" in c}
    sandbox = runtime.latest_sandbox()
    net_ok = sandbox is not None and sandbox.state is SandboxState.READY
    init_ok, init_reason, init_msg = _initialized(pod, runtime, init_statuses, phase)
    cr_ok, cr_reason, cr_msg = _containers_ready(pod, init_statuses, statuses, phase)
    ready_ok, ready_reason, ready_msg = cr_ok, cr_reason, cr_msg
    gates = _gates_message(pod, prev) if cr_ok else ""
    if gates:
        ready_ok, ready_reason, ready_msg = False, "ReadinessGatesNotReady", gates
    out = [
        _cond("PodReadyToStartContainers", net_ok, prev, now_iso),
        _cond("Initialized", init_ok, prev, now_iso, init_reason, init_msg),
        _cond("Ready", ready_ok, prev, now_iso, ready_reason, ready_msg),
        _cond("ContainersReady", cr_ok, prev, now_iso, cr_reason, cr_msg),
    ]
    scheduled = prev.get("PodScheduled")
    out.append(dict(scheduled) if scheduled else _cond("PodScheduled", True, {}, now_iso))
    out += [dict(c) for t, c in prev.items() if t not in (*OWNED_CONDITIONS, "PodScheduled")]
    return out


# ---------------------------------------------------------------- the whole status


def _pod_ips(pod: Pod, runtime: RuntimePod, host_ips: Sequence[str], prev: JsonObject) -> list[str]:
    if pod.host_network:
        return list(host_ips)
    sandbox = runtime.latest_sandbox()
    if sandbox is not None and sandbox.state is SandboxState.READY and sandbox.ip:
        return [sandbox.ip]
    return [p["ip"] for p in prev.get("podIPs") or [] if isinstance(p, dict) and "ip" in p]


DISRUPTION_TARGET, TERMINATION_BY_KUBELET = "DisruptionTarget", "TerminationByKubelet"
"""The condition upstream adds to a pod the kubelet evicts, and its reason."""
DISRUPTION_REASONS = ("Evicted", "Terminated")
"""Failures that carry DisruptionTarget: node-pressure eviction and graceful node shutdown."""


def derive_pod_status(
    pod: Pod,
    runtime: RuntimePod,
    *,
    previous_status: JsonMap | None,
    waiting_reasons: Mapping[str, Waiting] | None = None,
    readiness: Mapping[ContainerID, bool] | None = None,
    now_iso: str,
    host_ips: Sequence[str] = (),
    probe_results: ProbeResults | None = None,
    pod_is_terminal: bool = False,
    failure: Waiting | None = None,
    runtime_name: str = "containerd",
) -> JsonObject:
    """The node-owned part of status as an API dict. `waiting_reasons` come from the worker
    (CrashLoopBackOff, ErrImagePull, ImagePullBackOff, CreateContainerConfigError...);
    `readiness` is the readiness prober's verdict per container ID; `failure` (reason, message)
    marks the pod Failed with that reason (DeadlineExceeded, Evicted). A terminal phase in
    `previous_status` is never left."""
    prev = dict(previous_status or {})
    probes = probe_results or NO_PROBES
    inp = _StatusInputs(pod, runtime, waiting_reasons or {}, readiness or {}, probes, runtime_name)
    inits, apps = _container_statuses(inp)
    _keep_last_states(inits, prev.get("initContainerStatuses"))
    _keep_last_states(apps, prev.get("containerStatuses"))
    phase = pod_phase(pod, inits, apps, terminal=pod_is_terminal)
    if failure is not None:
        phase = FAILED
    if prev.get("phase") in TERMINAL_PHASES:
        phase = str(prev["phase"])
    previous_conditions = prev.get("conditions") or []
    status: JsonObject = {
        "phase": phase,
        "conditions": pod_conditions(
            pod, runtime, inits, apps, phase=phase, previous=previous_conditions, now_iso=now_iso
        ),
        "initContainerStatuses": inits,
        "containerStatuses": apps,
        "startTime": prev.get("startTime") or now_iso,
        "qosClass": qos_class(pod).value,
        **_ip_fields(pod, runtime, host_ips, prev),
    }
    if pod.ephemeral_containers:
        status["ephemeralContainerStatuses"] = ephemeral_container_statuses(inp)
    if failure is not None:
        status["reason"] = failure.reason
        status["message"] = failure.message
        conds = status["conditions"]
        if failure.reason in DISRUPTION_REASONS and all(
            c["type"] != DISRUPTION_TARGET for c in conds
        ):
            conds.append(
                _cond(DISRUPTION_TARGET, True, {}, now_iso, TERMINATION_BY_KUBELET, failure.message)
            )
    return status


def _keep_last_states(statuses: list[JsonObject], previous: object) -> None:
    """A lastState the runtime can no longer show (container GC removed that instance) is kept
    from the previous status, as upstream keeps LastTerminationState from the old status."""
    if not isinstance(previous, list):
        return
    old = {p.get("name"): p for p in previous if isinstance(p, dict)}
    for st in statuses:
        last = (old.get(st["name"]) or {}).get("lastState") or {}
        terminated = last.get("terminated") if isinstance(last, dict) else None
        if st["lastState"] or not isinstance(terminated, dict):
            continue
        if terminated.get("containerID") != st.get("containerID"):
            st["lastState"] = {"terminated": terminated}


def _container_statuses(inp: _StatusInputs) -> tuple[list[JsonObject], list[JsonObject]]:
    """(initContainerStatuses in spec order, containerStatuses sorted by name, as upstream)."""
    pod = inp.pod
    app_default = (
        POD_INITIALIZING
        if pod.init_containers and not _init_done(pod, inp.runtime, inp.probes)
        else CONTAINER_CREATING
    )
    inits = [
        container_status(inp, c, is_init=True, default=POD_INITIALIZING)
        for c in pod.init_containers
    ]
    apps = [container_status(inp, c, is_init=False, default=app_default) for c in pod.containers]
    apps.sort(key=lambda s: str(s["name"]))
    return inits, apps


def _ip_fields(
    pod: Pod, runtime: RuntimePod, host_ips: Sequence[str], prev: JsonObject
) -> JsonObject:
    out: JsonObject = {}
    if host_ips:
        out["hostIP"] = host_ips[0]
        out["hostIPs"] = [{"ip": ip} for ip in host_ips]
    ips = _pod_ips(pod, runtime, host_ips, prev)
    if ips:
        out["podIP"] = ips[0]
        out["podIPs"] = [{"ip": ip} for ip in ips]
    return out
