"""nftables mode's proxier: nft_rules' batches applied over netlink as one nf_tables transaction
per sync (full at start-up and after a failure, else only the changed shards), its metrics.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter

from net.nft import ir
from net.proxy.history import SyncRecord
from net.proxy.iptables.executor import Backend
from net.proxy.iptables.render import Restore
from net.proxy.metrics import ProxyMetrics
from net.proxy.model import ServiceKey
from net.proxy.nftables import batch as nft_batch
from net.proxy.nftables import rules as nft_rules
from net.proxy.proxier import Proxier, SyncJob, SyncOutcome

log = logging.getLogger(__name__)

PREFIX = nft_rules.SHARED_TABLE
"""Every table of ours is `pykube-proxy` or `pykube-proxy-<shard>`."""
FULL_SYNC_PERIOD = 3600.0
"""upstream's proxyutil.FullSyncPeriod: the periodic sync is partial, a full one only this often."""
NETLINK = Backend("netlink", "", "", "")
"""What /debug/rules reports as the backend (no iptables program is run in this mode)."""

Existing = nft_batch.Existing


class NftKernel(Protocol):
    """The netlink side (net.nft.netlink.NftNetlink in production, a fake in unit tests)."""

    def apply(self, ops: Sequence[ir.Op]) -> None:
        """Send `ops` as one transaction; raises (naming the failing op) when refused."""
        ...

    def tables(self, prefix: str) -> Existing:
        """{table: (chain names, set names)} of the tables whose name starts with `prefix`."""
        ...

    def close(self) -> None: ...


def ours(table: str) -> bool:
    return table == PREFIX or table.startswith(f"{PREFIX}-")


class NftMetrics(ProxyMetrics):
    """ProxyMetrics as upstream's nftables mode registers them: no iptables restore counters or
    rule gauge; a failed sync counts in kubeproxy_sync_proxy_rules_nftables_sync_failures_total."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        for iptables_only in (
            self.restore_failures,
            self.partial_restore_failures,
            self.iptables_total,
        ):
            self.registry.unregister(iptables_only)
        self.sync_failures = Counter(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
            "Cumulative proxy nftables sync failures",
            registry=self.registry,
        )

    def record_sync(self, seconds: float, *, full: bool, ok: bool, now: float) -> None:
        self.sync_duration.observe(seconds)
        (self.sync_full_duration if full else self.sync_partial_duration).observe(seconds)
        if ok:
            self.last_timestamp.set(now)
        else:
            self.sync_failures.inc()


@dataclass(frozen=True)
class NftSync:
    """What one sync sent (SyncOutcome.extra in this mode)."""

    desired: nft_rules.NftRuleSet
    ops: tuple[ir.Op, ...]
    full: bool
    changed: tuple[ServiceKey, ...]
    removed_chains: tuple[str, ...]


def stale_chains(desired: nft_rules.NftRuleSet, existing: Existing) -> tuple[str, ...]:
    """`table/chain` of chains found in the kernel that `desired` does not have."""
    want = {t.name: {c.name for c, _ in t.chains} for t in desired.tables()}
    out: list[str] = []
    for table, (chains, _sets) in sorted(existing.items()):
        if not ours(table):
            continue
        keep = want.get(table, set())
        out.extend(f"{table}/{c}" for c in sorted(chains) if c not in keep)
    return tuple(out)


def verdict_maps(ops: Sequence[ir.Op]) -> set[tuple[str, str]]:
    """(table, set) of the verdict maps a batch adds, which its text needs to know (`flush map`
    vs `flush set`; only a full batch flushes sets, and it adds them first)."""
    return {
        (op.table, op.set.name) for op in ops if isinstance(op, ir.AddSet) and op.set.verdict_map
    }


class NftProxier(Proxier):
    """The proxier of nftables mode: same events, pacing, conntrack and bookkeeping as iptables
    mode; the kernel work is one atomic nf_tables batch per sync. A refused batch changes
    nothing (nf_tables transactions are all or nothing) and makes the next sync a full one."""

    def __init__(
        self,
        *args: Any,
        nft: NftKernel,
        shards: int = nft_rules.SHARDS,
        render_text: Callable[[Sequence[ir.Op], Collection[tuple[str, str]]], str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.nft = nft
        self.shards = shards
        self.nft_applied: nft_rules.NftRuleSet | None = None
        """What the kernel holds (the last rule set whose batch went in)."""
        self._render_text = render_text

    def apply(self, job: SyncJob, out: SyncOutcome) -> None:
        from net.nft.netlink import NftError

        applied = self.nft_applied
        full = job.full or applied is None
        desired = nft_rules.build(
            job.state,
            job.config,
            previous=applied,
            changed=None if full else set(job.pending.services),
            shards=self.shards,
        )
        if full or applied is None:
            try:
                existing = self.nft.tables(PREFIX)
            except (NftError, OSError) as exc:
                out.error = f"reading the {PREFIX}* tables: {exc}"
                log.error("nftables: %s", out.error)
                return
            ops = tuple(nft_batch.full_batch(desired, existing))
            changed = tuple(sorted(job.state.services))
            removed = stale_chains(desired, existing)
        else:
            batch = nft_batch.partial_batch(desired, applied)
            ops = tuple(batch.ops)
            changed = tuple(sorted(batch.changed))
            removed = tuple(batch.removed_chains)
            full = bool(batch.full)
        out.extra = NftSync(desired, ops, full, changed, removed)
        if not ops:
            return
        try:
            self.nft.apply(ops)
        except (NftError, OSError) as exc:
            out.error = str(exc)
            log.error("nftables batch refused full=%s ops=%d: %s", full, len(ops), exc)

    def run(self, job: SyncJob) -> SyncOutcome:
        out = super().run(job)
        sent = out.extra
        if isinstance(sent, NftSync):
            # The batch as nft text, for /debug/rules (after the timed part: only people read it)
            out.restore = Restore(
                text=self._text(sent),
                full=sent.full,
                changed=sent.changed,
                removed_chains=sent.removed_chains,
                lines=len(sent.ops),
            )
        return out

    def _text(self, sent: NftSync) -> str:
        if not sent.ops:
            return ""
        render = self._render_text
        if render is None:
            from net.nft.text import ops_text

            render = ops_text
        try:
            return render(sent.ops, verdict_maps(sent.ops))
        except ValueError as exc:  # the kernel took it; a text the renderer refuses is a bug
            log.warning("cannot show the batch as nft text: %s", exc)
            return f"# batch of {len(sent.ops)} ops (not renderable: {exc})\n"

    def finish(self, job: SyncJob, out: SyncOutcome) -> SyncRecord:
        record = super().finish(job, out)
        if not out.error and isinstance(out.extra, NftSync):
            self.nft_applied = out.extra.desired
            if out.extra.full:
                # The full rule set lives until the next full sync. Collect what the sync left
                # and freeze the survivors, so a later collection (at 10k Services ~0.3 s) never
                # walks them in the middle of a few-ms partial sync.
                gc.collect()
                gc.freeze()
        # on failure the kernel holds what it held; the (full) retry re-reads it anyway
        return record

    @property
    def rule_count(self) -> int:
        return self.nft_applied.rule_count() if self.nft_applied is not None else 0

    def tables(self) -> tuple[ir.Table, ...]:
        """The applied tables as data (the trace and explain views read them)."""
        return self.nft_applied.tables() if self.nft_applied is not None else ()

    def close(self) -> None:
        self.nft.close()
