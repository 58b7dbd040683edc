"""iptables mode's ProxyBackend: the rule model built incrementally from the shared model, one
`iptables-restore --noflush` per sync (full, or only the changed Services' chains), a refused
restore rolled back table by table, and the rules as applied for the debug views.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from net.proxy.backend import SyncError, Traits, Unsupported
from net.proxy.conntrack import ConntrackEntry
from net.proxy.iptables import executor, render, rules
from net.proxy.iptables.executor import (
    Executor,
    RestoreError,
    committed_tables,
    table_sections,
)
from net.proxy.iptables.explain import explain
from net.proxy.iptables.metrics import IptablesMetrics
from net.proxy.iptables.trace import trace
from net.proxy.model import ClusterState, ProxyConfig, ServiceKey
from net.proxy.views import Explanation, TraceResult

log = logging.getLogger(__name__)

TABLES = (rules.FILTER, rules.NAT)


@dataclass(frozen=True)
class Restored:
    """What one sync fed iptables-restore (its history entry)."""

    restore: render.Restore

    @property
    def changed(self) -> tuple[ServiceKey, ...]:
        return self.restore.changed

    @property
    def removed_chains(self) -> tuple[str, ...]:
        return self.restore.removed_chains

    @property
    def size(self) -> int:
        return self.restore.lines

    def text(self) -> str:
        return self.restore.text


def open_backend() -> IptablesBackend:
    """The backend on the iptables backend (nf_tables or legacy) this host uses; Unsupported
    when neither iptables-restore is installed."""
    try:
        found = executor.detect()
    except (RuntimeError, OSError) as exc:
        raise Unsupported(str(exc)) from exc
    return IptablesBackend(Executor(found))


class IptablesBackend:
    """Remembers the RuleSet the kernel holds: partial restores are rendered against it."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.traits = Traits("iptables", executor.backend.name, localhost_nodeports=True)
        self.metrics = IptablesMetrics()
        self.applied: rules.RuleSet | None = None
        """What the kernel holds (the last RuleSet whose restore succeeded)."""
        self.built: rules.RuleSet | None = None
        """What the next build patches (the applied one, unless a sync is under way)."""
        self._sent: rules.RuleSet | None = None

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.metrics.register(registry)

    def sync(
        self,
        state: ClusterState,
        config: ProxyConfig,
        *,
        full: bool,
        changed: Collection[ServiceKey],
    ) -> Restored:
        self._sent = None
        desired = rules.build(
            state, config, previous=self.built, changed=None if full else set(changed)
        )
        # a full sync reads the kernel once per table: stale chains to delete, and which
        # builtin jumps are missing (inserted in the same restore, no iptables call per jump)
        saved = {t: self.executor.inspect(t) for t in TABLES} if full else None
        restore = render.render(
            desired,
            self.applied,
            full=full,
            existing={t: s.chains for t, s in saved.items()} if saved else None,
            jumps_present={t: s.jumps for t, s in saved.items()} if saved else None,
        )
        sent = Restored(restore)
        self._sent = desired
        if not restore.empty:
            try:
                self.executor.restore(restore.text)
            except RestoreError as exc:
                self._roll_back(restore.text, exc, desired)
                log.error(
                    "iptables-restore failed line=%s rule=%r full=%s error=%s",
                    exc.line,
                    exc.text,
                    full,
                    exc.stderr.splitlines()[0] if exc.stderr else exc,
                )
                raise SyncError(str(exc), sent) from exc
        return sent

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

    def settle(self, *, ok: bool, full: bool) -> None:
        sent, self._sent = self._sent, None
        self.metrics.record_sync(ok=ok, full=full)
        if not ok:
            # the kernel holds the old rules (a failed restore is rolled back) or something
            # the full sync owed now rewrites anyway
            self.built = self.applied
            return
        if sent is not None:
            self.applied = self.built = sent
            if full:  # walks every chain: not when partial
                for table, chains in sent.tables.items():
                    count = sum(len(r) for r in chains.values())
                    self.metrics.rules_total.labels(table).set(count)

    def rule_count(self) -> int:
        return self.applied.rule_count if self.applied is not None else 0

    def trace(
        self, *, src: str, dst: str, port: int, proto: str, local_addresses: Sequence[str]
    ) -> TraceResult | None:
        if self.applied is None:
            return None
        return trace(
            self.applied, src=src, dst=dst, port=port, proto=proto, local_addresses=local_addresses
        )

    def explain(
        self,
        state: ClusterState,
        key: ServiceKey,
        *,
        config: ProxyConfig,
        conntrack: Sequence[ConntrackEntry],
    ) -> Explanation | None:
        if self.applied is None:
            return None
        return explain(state, self.applied, key, conntrack=conntrack)

    def close(self) -> None:
        """Nothing to release: each restore is a process of its own."""
