"""nftables mode's ProxyBackend: the rule model's batches sent over netlink as one nf_tables
transaction per sync (full at start-up, after a failure and hourly, else only the changed shards),
its metric, and the applied tables for the debug views.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from net.nft import ir
from net.proxy.backend import SyncError, Traits, Unsupported
from net.proxy.conntrack import ConntrackEntry
from net.proxy.model import ClusterState, ProxyConfig, ServiceKey
from net.proxy.nftables import batch as nft_batch
from net.proxy.nftables import rules as nft_rules
from net.proxy.views import Explanation, TraceResult

log = logging.getLogger(__name__)

PREFIX = nft_rules.SHARED_TABLE
"""Every table of ours is `pykube-proxy` or `pykube-proxy-<shard>`."""
FULL_SYNC_PERIOD = 3600.0
"""upstream's proxyutil.FullSyncPeriod: the periodic sync is partial, a full one only this often."""
NETLINK = "netlink"
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


class NftMetrics:
    """nftables mode's own metric, with upstream's name: a failed sync counts in
    kubeproxy_sync_proxy_rules_nftables_sync_failures_total (no iptables counters or gauge)."""

    def __init__(self) -> None:
        self.sync_failures = Counter(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
            "Cumulative proxy nftables sync failures",
            registry=None,
        )

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self.sync_failures)


@dataclass(frozen=True)
class NftSync:
    """What one sync sent: one batch (its history entry)."""

    desired: nft_rules.NftRuleSet
    ops: tuple[ir.Op, ...]
    full: bool
    changed: tuple[ServiceKey, ...]
    removed_chains: tuple[str, ...]
    render_text: Callable[[Sequence[ir.Op], Collection[tuple[str, str]]], str] | None = None

    @property
    def size(self) -> int:
        return len(self.ops)

    def text(self) -> str:
        """The batch as nft text, for /debug/rules."""
        if not self.ops:
            return ""
        render = self.render_text
        if render is None:
            from net.nft.text import ops_text

            render = ops_text
        try:
            return render(self.ops, verdict_maps(self.ops))
        except ValueError as exc:  # the kernel took it; a text the renderer refuses is a bug
            log.warning("cannot show the batch as nft text: %s", exc)
            return f"# batch of {len(self.ops)} ops (not renderable: {exc})\n"


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


def open_backend() -> NftBackend:
    """The backend on a netlink socket of this netns; Unsupported when none can be opened."""
    from net.nft.netlink import NftNetlink

    try:
        return NftBackend(NftNetlink())
    except OSError as exc:
        raise Unsupported(f"nftables: {exc}") from exc


class NftBackend:
    """The kernel work of nftables mode: one atomic nf_tables batch per sync. A refused batch
    changes nothing (nf_tables transactions are all or nothing) and the next sync is full."""

    def __init__(
        self,
        nft: NftKernel,
        *,
        shards: int = nft_rules.SHARDS,
        render_text: Callable[[Sequence[ir.Op], Collection[tuple[str, str]]], str] | None = None,
    ) -> None:
        self.nft = nft
        self.shards = shards
        self.traits = Traits(
            "nftables",
            NETLINK,
            full_sync_period=FULL_SYNC_PERIOD,
            partial_syncs=True,
            size_unit="ops",
            text_kind="nftables batch",
        )
        self.metrics = NftMetrics()
        self.applied: nft_rules.NftRuleSet | None = None
        """What the kernel holds (the last rule set whose batch went in)."""
        self._render_text = render_text
        self._sent: NftSync | None = None

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.metrics.register(registry)

    def sync(
        self,
        state: ClusterState,
        config: ProxyConfig,
        *,
        full: bool,
        changed: Collection[ServiceKey],
    ) -> NftSync:
        from net.nft.netlink import NftError

        self._sent = None
        applied = self.applied
        full = full or applied is None
        desired = nft_rules.build(
            state,
            config,
            previous=applied,
            changed=None if full else set(changed),
            shards=self.shards,
        )
        if full or applied is None:
            try:
                existing = self.nft.tables(PREFIX)
            except (NftError, OSError) as exc:
                message = f"reading the {PREFIX}* tables: {exc}"
                log.error("nftables: %s", message)
                raise SyncError(message) from exc
            ops = tuple(nft_batch.full_batch(desired, existing))
            keys = tuple(sorted(state.services))
            removed = stale_chains(desired, existing)
        else:
            batch = nft_batch.partial_batch(desired, applied)
            ops, keys = tuple(batch.ops), tuple(sorted(batch.changed))
            removed, full = tuple(batch.removed_chains), bool(batch.full)
        sent = self._sent = NftSync(desired, ops, full, keys, removed, self._render_text)
        if ops:
            try:
                self.nft.apply(ops)
            except (NftError, OSError) as exc:
                log.error("nftables batch refused full=%s ops=%d: %s", full, len(ops), exc)
                raise SyncError(str(exc), sent) from exc
        return sent

    def settle(self, *, ok: bool, full: bool) -> None:
        sent, self._sent = self._sent, None
        if not ok:
            # the kernel holds what it held; the (full) retry re-reads it anyway
            self.metrics.sync_failures.inc()
            return
        if sent is not None:
            self.applied = sent.desired
            if sent.full:
                # The full rule set lives until the next full sync. Collect what the sync left
                # and freeze the survivors, so a later collection (at 10k Services ~0.3 s) never
                # walks them in the middle of a few-ms partial sync.
                gc.collect()
                gc.freeze()

    def rule_count(self) -> int:
        return self.applied.rule_count() if self.applied is not None else 0

    def tables(self) -> tuple[ir.Table, ...]:
        """The applied tables as data (the trace and explain views read them)."""
        return self.applied.tables() if self.applied is not None else ()

    def trace(
        self, *, src: str, dst: str, port: int, proto: str, local_addresses: Sequence[str]
    ) -> TraceResult | None:
        from net.proxy.nftables.trace import trace_tables

        tables = self.tables()
        if not tables:
            return None
        return trace_tables(
            tables, src=src, dst=dst, port=port, proto=proto, local_addresses=local_addresses
        )

    def explain(
        self,
        state: ClusterState,
        key: ServiceKey,
        *,
        config: ProxyConfig,
        conntrack: Sequence[ConntrackEntry],
    ) -> Explanation | None:
        from net.proxy.nftables.explain import explain_tables

        tables = self.tables()
        if not tables:
            return None
        return explain_tables(
            state,
            tables,
            key,
            node_name=config.node_name,
            node_ips=config.node_ips,
            conntrack=conntrack,
        )

    def close(self) -> None:
        self.nft.close()
