"""The proxy's sync engine, the same in every mode: informer events in, pending changes and
snapshots of the state out, one sync at a time through the mode's ProxyBackend (partial for
changed Services, full at start-up, periodically and after a failure), its bookkeeping: conntrack
flushes, metrics, history. No I/O loop, no apiserver, no rules.
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
from net.proxy.backend import ProxyBackend, Sent, SyncError
from net.proxy.history import History, SyncRecord
from net.proxy.metrics import ProxyMetrics
from net.proxy.policy import port_endpoints, serving

log = logging.getLogger(__name__)

TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


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
    """A full sync is owed (start-up, node facts changed, a failed sync)."""
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
    sent: Sent | None = None
    """What the backend sent (or tried to)."""
    text: str = ""
    """`sent` as a person reads it (rendered after the timed part)."""
    error: str = ""
    frontends: dict[model.ServiceKey, Frontends] | None = None
    """Frontends of the Services this sync looked at (all of them when full)."""
    flushed: int = 0


class Proxier:
    """Holds the informers' objects and has the backend turn them into applied rules."""

    def __init__(
        self,
        config: model.ProxyConfig,
        backend: ProxyBackend,
        *,
        metrics: ProxyMetrics,
        history: History,
        conntrack_tool: conntrack.Conntrack | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.backend = backend
        self.metrics = metrics
        backend.register_metrics(metrics.registry)
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
        """Have the backend build and apply the job (blocking: a worker thread may run it; one
        job at a time), then flush stale conntrack entries."""
        start_wall, t0 = self._clock(), self._monotonic()
        out = SyncOutcome(start=start_wall)
        try:
            out.sent = self.backend.sync(
                job.state, job.config, full=job.full, changed=job.pending.services
            )
        except SyncError as exc:  # refused by the kernel: the backend said why in its log
            out.error, out.sent = str(exc), exc.attempted
        except Exception as exc:  # any failure is a failed sync, retried in full
            # (letting it out would end the sync loop with the job's pending changes lost)
            out.error = f"{type(exc).__name__}: {exc}"
            log.exception("sync failed full=%s", job.full)
        out.duration = self._monotonic() - t0
        if not out.error and self.conntrack is not None:
            out.frontends, out.flushed = self._flush(job)
        if out.sent is not None:
            out.text = out.sent.text()  # after the timed part: only people read it
        return out

    def _flush(self, job: SyncJob) -> tuple[dict[model.ServiceKey, Frontends], int]:
        """Delete the conntrack entries of UDP/SCTP frontends whose endpoints went."""
        assert self.conntrack is not None
        keys = (set(self._frontends) | set(job.state.services)) if job.full else None
        frontends = frontends_of(job.state, keys or job.pending.services)
        before: Frontends = {}
        after: Frontends = {}
        for key, fronts in frontends.items():
            before.update(self._frontends.get(key, {}))
            after.update(fronts)
        return frontends, self.conntrack.flush(conntrack.stale_flushes(before, after))

    def finish(self, job: SyncJob, out: SyncOutcome) -> SyncRecord:
        """Record the outcome (on the thread that feeds events)."""
        ok = not out.error
        now = self._clock()
        self.metrics.record_sync(out.duration, full=job.full, ok=ok, now=now)
        self.backend.settle(ok=ok, full=job.full)
        if ok:
            self._synced(job, out, now)
        else:
            # The kernel holds the old rules (a refused sync leaves them as they were) or
            # something a full sync rewrites anyway: keep what is owed, and owe a full sync.
            self.pending.services |= job.pending.services
            self.pending.triggers = job.pending.triggers + self.pending.triggers
            self.pending.reasons |= job.pending.reasons
            self.pending.full = True
            self.pending.since = job.pending.since or self.pending.since or out.start
        sent = out.sent
        record = SyncRecord(
            time=out.start,
            duration=out.duration,
            full=job.full,
            services=len(job.state.services),
            changed=tuple(f"{ns}/{name}" for ns, name in sent.changed) if sent else (),
            removed=tuple(sent.removed_chains) if sent else (),
            lines=sent.size if sent else 0,
            error=out.error,
            reasons=job.reasons,
            conntrack_flushed=out.flushed,
            text=out.text,
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

    def _synced(self, job: SyncJob, out: SyncOutcome, now: float) -> None:
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

    def sync(self, *, full: bool = False, reason: str = "") -> SyncRecord:
        """prepare, run and finish on the calling thread (tests, one-shot use)."""
        job = self.prepare(full=full, reason=reason)
        return self.finish(job, self.run(job))
