"""The proxy's sync state: informer events in, one iptables-restore per sync out (partial syncs
for changed Services, full ones periodically and after a failure). No I/O loop, no apiserver.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kube.apiserver import SYNC, InformerEvent
from net.proxy import conntrack, model
from net.proxy.history import History, SyncRecord
from net.proxy.iptables import render, rules
from net.proxy.iptables.executor import Executor, RestoreError, committed_tables, table_sections
from net.proxy.metrics import ProxyMetrics
from net.proxy.policy import port_endpoints, serving

log = logging.getLogger(__name__)

TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TABLES = ("filter", "nat")


def parse_time(value: object) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = _meta(obj)
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def _slice_service(obj: Mapping[str, Any]) -> model.ServiceKey | None:
    meta = _meta(obj)
    labels = meta.get("labels")
    name = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, Mapping) else None
    if not isinstance(name, str) or not name:
        return None
    return (str(meta.get("namespace") or "default"), name)


Frontends = dict[conntrack.FrontendKey, frozenset[str]]


def service_frontends(svc: model.Service, eps: tuple[model.Endpoint, ...]) -> Frontends:
    """The UDP/SCTP frontends of one Service and the endpoint IPs traffic to each may reach
    (ready ones, else serving-terminating ones, as the rules pick them)."""
    out: Frontends = {}
    for port in svc.ports:
        if port.protocol == "TCP":
            continue
        ips = frozenset(e.ip for e in serving(port_endpoints(port, eps)))
        for ip in (svc.cluster_ip, *svc.external_ips, *svc.lb_ips):
            out[(ip, port.port, port.protocol)] = ips
        if port.node_port:
            out[("", port.node_port, port.protocol)] = ips
    return out


def frontends_of(
    state: model.ClusterState, keys: Iterable[model.ServiceKey]
) -> dict[model.ServiceKey, Frontends]:
    """service_frontends of `keys` (an empty map for keys without a Service)."""
    out: dict[model.ServiceKey, Frontends] = {}
    for key in keys:
        svc = state.services.get(key)
        out[key] = service_frontends(svc, state.endpoints.get(key, ())) if svc else {}
    return out


@dataclass
class Pending:
    """What changed since the last sync that was applied."""

    services: set[model.ServiceKey] = field(default_factory=set)
    triggers: list[float] = field(default_factory=list)
    """last-change-trigger-time of EndpointSlice changes, for network programming latency."""
    reasons: set[str] = field(default_factory=set)
    endpoint_changes: int = 0
    full: bool = True
    """A full sync is owed (start-up, node facts changed, a failed restore)."""
    since: float = 0.0
    """Wall time of the oldest change waiting; 0 when none."""


@dataclass(frozen=True)
class SyncJob:
    """One sync to run: a snapshot taken when it was prepared."""

    full: bool
    state: model.ClusterState
    config: model.ProxyConfig
    pending: Pending
    reasons: tuple[str, ...]


@dataclass
class SyncOutcome:
    start: float
    duration: float = 0.0
    desired: rules.RuleSet | None = None
    restore: render.Restore | None = None
    error: str = ""
    extra: Any = None
    """What another mode's apply() produced (IPVS: the state it programmed)."""
    frontends: dict[model.ServiceKey, Frontends] | None = None
    """Frontends of the Services this sync looked at (all of them when full)."""
    flushed: int = 0


class Proxier:
    """Holds the informers' objects and turns them into applied rules."""

    def __init__(
        self,
        config: model.ProxyConfig,
        executor: Executor,
        *,
        metrics: ProxyMetrics,
        history: History,
        conntrack_tool: conntrack.Conntrack | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.executor = executor
        self.metrics = metrics
        self.history = history
        self.conntrack = conntrack_tool
        self._clock = clock
        self._monotonic = monotonic
        self._services: dict[model.ServiceKey, model.Service] = {}
        self._service_objects: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._slices: dict[tuple[str, str], Mapping[str, Any]] = {}
        """(namespace, slice name) -> the slice."""
        self._slices_of: dict[model.ServiceKey, set[tuple[str, str]]] = {}
        self._endpoints: dict[model.ServiceKey, tuple[model.Endpoint, ...]] = {}
        self.pending = Pending()
        self.applied: rules.RuleSet | None = None
        """What the kernel holds (the last RuleSet whose restore succeeded)."""
        self.built: rules.RuleSet | None = None
        self.state = model.ClusterState({}, {})
        """The state of the last successful sync (the debug views read it)."""
        self._frontends: dict[model.ServiceKey, Frontends] = {}
        self.synced_once = False

    # ---- events --------------------------------------------------------------------------------
    def _changed(self, key: model.ServiceKey, reason: str) -> None:
        self.pending.services.add(key)
        self.pending.reasons.add(reason)
        self.metrics.service_changes_pending.set(len(self.pending.services))
        if not self.pending.since:
            self.pending.since = self._clock()

    def on_service(self, event: InformerEvent) -> None:
        if event.type == SYNC:
            new = {_key(o): o for o in event.items}
            for key in set(self._service_objects) | set(new):
                if self._service_objects.get(key) is not new.get(key):
                    self._set_service(key, new.get(key))
            return
        obj = event.object
        if obj is None:
            return
        key = _key(obj)
        self._set_service(key, None if event.type == "DELETED" else obj)

    def _set_service(self, key: tuple[str, str], obj: Mapping[str, Any] | None) -> None:
        old = self._services.get(key)
        svc = model.service_from_object(obj) if obj is not None else None
        if obj is None:
            self._service_objects.pop(key, None)
        else:
            self._service_objects[key] = obj
        if svc is None:
            self._services.pop(key, None)
        else:
            self._services[key] = svc
        if svc != old:
            self.metrics.service_changes_total.inc()
            self._changed(key, f"Service {key[0]}/{key[1]}")

    def on_slice(self, event: InformerEvent) -> None:
        if event.type == SYNC:
            new = {_key(o): o for o in event.items}
            for key in set(self._slices) | set(new):
                if self._slices.get(key) is not new.get(key):
                    self._set_slice(key, new.get(key))
            return
        obj = event.object
        if obj is None:
            return
        self._set_slice(_key(obj), None if event.type == "DELETED" else obj)

    def _set_slice(self, key: tuple[str, str], obj: Mapping[str, Any] | None) -> None:
        old = self._slices.get(key)
        owners = {
            owner
            for owner in (_slice_service(o) for o in (old, obj) if o is not None)
            if owner is not None
        }
        if obj is None:
            self._slices.pop(key, None)
        else:
            self._slices[key] = obj
            notes = _meta(obj).get("annotations")
            trigger = (
                parse_time(notes.get(TRIGGER_ANNOTATION)) if isinstance(notes, Mapping) else None
            )
            if trigger is not None:
                self.pending.triggers.append(trigger)
        for svc_key in owners:
            names = self._slices_of.setdefault(svc_key, set())
            if obj is not None and _slice_service(obj) == svc_key:
                names.add(key)
            else:
                names.discard(key)
            eps = model.endpoints_from_slices(self._slices[n] for n in sorted(names))
            new_eps = eps.get(svc_key, ())
            if not names:
                del self._slices_of[svc_key]
            if new_eps != self._endpoints.get(svc_key, ()):
                if new_eps:
                    self._endpoints[svc_key] = new_eps
                else:
                    self._endpoints.pop(svc_key, None)
                self.metrics.endpoint_changes_total.inc()
                self._changed(svc_key, f"EndpointSlice {key[0]}/{key[1]}")
                self.pending.endpoint_changes += 1
                self.metrics.endpoint_changes_pending.set(self.pending.endpoint_changes)

    def set_config(self, config: model.ProxyConfig, reason: str) -> None:
        """New node facts (addresses): everything is rebuilt."""
        if config != self.config:
            self.config = config
            self.pending.full = True
            self.pending.reasons.add(reason)
            if not self.pending.since:
                self.pending.since = self._clock()

    @property
    def dirty(self) -> bool:
        return bool(self.pending.services or self.pending.full)

    def snapshot(self) -> model.ClusterState:
        # Endpoints of keys without a Service may be in it: the rule model looks them up by
        # Service, so filtering them here would only cost time on every sync.
        return model.ClusterState(dict(self._services), dict(self._endpoints))

    # ---- syncing --------------------------------------------------------------------------------
    def prepare(self, *, full: bool = False, reason: str = "") -> SyncJob:
        """Take what is owed and a snapshot of the state (on the thread that feeds events)."""
        pending, self.pending = self.pending, Pending(full=False)
        self.metrics.service_changes_pending.set(0)
        self.metrics.endpoint_changes_pending.set(0)
        full = full or pending.full or not self.synced_once
        reasons = pending.reasons | ({reason} if reason else set())
        return SyncJob(
            full=full,
            state=self.snapshot(),
            config=self.config,
            pending=pending,
            reasons=tuple(sorted(reasons)),
        )

    def run(self, job: SyncJob) -> SyncOutcome:
        """Build, render and apply (blocking: a worker thread may run it; one job at a time)."""
        start_wall, t0 = self._clock(), self._monotonic()
        out = SyncOutcome(start=start_wall)
        try:
            self.apply(job, out)
        except RestoreError as exc:
            out.error = str(exc)
            log.error(
                "iptables-restore failed line=%s rule=%r full=%s error=%s",
                exc.line,
                exc.text,
                job.full,
                exc.stderr.splitlines()[0] if exc.stderr else exc,
            )
        except Exception as exc:  # any failure is a failed sync, retried in full
            # (letting it out would end the sync loop with the job's pending changes lost)
            out.error = f"{type(exc).__name__}: {exc}"
            log.exception("sync failed full=%s", job.full)
        out.duration = self._monotonic() - t0
        if not out.error and self.conntrack is not None:
            keys = (set(self._frontends) | set(job.state.services)) if job.full else None
            out.frontends = frontends_of(job.state, keys or job.pending.services)
            before: Frontends = {}
            after: Frontends = {}
            for key, fronts in out.frontends.items():
                before.update(self._frontends.get(key, {}))
                after.update(fronts)
            out.flushed = self.conntrack.flush(conntrack.stale_flushes(before, after))
        return out

    def apply(self, job: SyncJob, out: SyncOutcome) -> None:
        """Put the job's state into the kernel (iptables mode); raises when refused."""
        out.desired = rules.build(
            job.state,
            job.config,
            previous=self.built,
            changed=None if job.full else set(job.pending.services),
        )
        # a full sync reads the kernel once per table: stale chains to delete, and which
        # builtin jumps are missing (inserted in the same restore, no iptables call per jump)
        saved = {t: self.executor.inspect(t) for t in TABLES} if job.full else None
        out.restore = render.render(
            out.desired,
            self.applied,
            full=job.full,
            existing={t: s.chains for t, s in saved.items()} if saved else None,
            jumps_present={t: s.jumps for t, s in saved.items()} if saved else None,
        )
        if not out.restore.empty:
            try:
                self.executor.restore(out.restore.text)
            except RestoreError as exc:
                self._roll_back(out.restore.text, exc, out.desired)
                raise

    def _roll_back(self, text: str, exc: RestoreError, desired: rules.RuleSet) -> None:
        """iptables-restore commits table by table: when a later table of the batch fails,
        the earlier ones are already in. Put those back as they were (one more restore, only
        on failure), so a failed sync leaves the kernel as it found it."""
        done = committed_tables(text, exc.line)
        if not done:
            return
        if self.applied is None:
            log.warning("tables %s of a failed restore stay applied (no earlier rules)", done)
            return
        inverse = render.render(self.applied, desired, full=False)
        undo = table_sections(inverse.text, done)
        if not undo:
            return
        try:
            self.executor.restore(undo)
            log.info("rolled back tables %s of the failed restore", ",".join(done))
        except RestoreError as again:
            log.error("rolling back tables %s failed: %s", ",".join(done), again)

    def finish(self, job: SyncJob, out: SyncOutcome) -> SyncRecord:
        """Record the outcome (on the thread that feeds events)."""
        ok = not out.error
        now = self._clock()
        self.metrics.record_sync(out.duration, full=job.full, ok=ok, now=now)
        if ok:
            if out.desired is not None:
                self.applied = self.built = out.desired
            self.synced_once = True
            self.state = job.state
            for key, fronts in (out.frontends or {}).items():
                if fronts:
                    self._frontends[key] = fronts
                else:
                    self._frontends.pop(key, None)
            if out.flushed:
                self.metrics.conntrack_deleted.labels("IPv4").inc(out.flushed)
            for trigger in job.pending.triggers:
                if trigger <= now:
                    self.metrics.network_programming.observe(now - trigger)
            if job.full and out.desired is not None:  # walks every chain: not when partial
                for table, chains in out.desired.tables.items():
                    count = sum(len(r) for r in chains.values())
                    self.metrics.iptables_total.labels(table).set(count)
        else:
            # The kernel holds the old rules (a failed restore is rolled back) or something a
            # full sync rewrites anyway: keep what is owed, and owe a full sync.
            self.built = self.applied
            self.pending.services |= job.pending.services
            self.pending.triggers = job.pending.triggers + self.pending.triggers
            self.pending.reasons |= job.pending.reasons
            self.pending.full = True
            self.pending.since = job.pending.since or self.pending.since or out.start
        r = out.restore
        record = SyncRecord(
            time=out.start,
            duration=out.duration,
            full=job.full,
            services=len(job.state.services),
            changed=tuple(f"{ns}/{name}" for ns, name in r.changed) if r is not None else (),
            removed=tuple(r.removed_chains) if r is not None else (),
            lines=r.lines if r is not None else 0,
            error=out.error,
            reasons=job.reasons,
            conntrack_flushed=out.flushed,
            text=r.text if r is not None else "",
        )
        self.history.add(record)
        log.info(
            "synced full=%s ok=%s duration=%.3fs lines=%d changed=%d removed=%d services=%d",
            job.full,
            ok,
            out.duration,
            record.lines,
            len(record.changed),
            len(record.removed),
            record.services,
        )
        return record

    def sync(self, *, full: bool = False, reason: str = "") -> SyncRecord:
        """prepare, run and finish on the calling thread (tests, one-shot use)."""
        job = self.prepare(full=full, reason=reason)
        return self.finish(job, self.run(job))
