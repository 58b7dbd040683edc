"""nftables mode's backend under the sync engine, with a fake netlink side: the first sync is
full (read the kernel, then one batch), a one-Service change touches its shard only, a refused
batch owes a full sync, upstream's nftables metrics, the daemon's pacing and views in this mode,
and --cleanup of our tables."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Collection, Sequence
from typing import cast

from prometheus_client import CollectorRegistry

from kube.apiserver import ApiClient
from net.nft import ir
from net.nft.netlink import NftError
from net.proxy import model
from net.proxy.conntrack import Conntrack
from net.proxy.daemon import ProxyDaemon
from net.proxy.history import History
from net.proxy.metrics import ProxyMetrics
from net.proxy.nftables import rules as nft_rules
from net.proxy.nftables.backend import FULL_SYNC_PERIOD, NftBackend
from net.proxy.nftables.cleanup import cleanup_nftables, nftables_ops
from net.proxy.proxier import Proxier
from net.proxy.settings import ProxySettings

from ..objects import Kernel, endpoint_slice, modified, node, service, sync

CONFIG = model.ProxyConfig(node_name="n1", node_ips=("192.168.1.10",), cluster_cidr="10.88.0.0/16")
OPS_WITH_TABLE = (
    ir.AddTable,
    ir.DeleteTable,
    ir.FlushTable,
    ir.AddChain,
    ir.FlushChain,
    ir.DeleteChain,
    ir.AddRule,
    ir.AddSet,
    ir.FlushSet,
    ir.DeleteSet,
    ir.AddElements,
    ir.DeleteElements,
)


class FakeNft:
    """Keeps the tables, chains and sets a batch leaves (what tables() reads back); a batch
    naming `fail` (a table) is refused whole, as nf_tables refuses a transaction."""

    def __init__(self) -> None:
        self.batches: list[list[ir.Op]] = []
        self.objects: dict[str, tuple[set[str], set[str]]] = {}
        self.reads = 0
        self.fail: str | None = None
        self.closed = False

    def apply(self, ops: Sequence[ir.Op]) -> None:
        if self.fail is not None and any(op.table == self.fail for op in ops):
            raise NftError(f"batch refused at an op on table {self.fail}: No such file", None, 2)
        for op in ops:
            chains, sets = self.objects.setdefault(op.table, (set(), set()))
            if isinstance(op, ir.DeleteTable):
                del self.objects[op.table]
            elif isinstance(op, ir.AddChain):
                chains.add(op.chain.name)
            elif isinstance(op, ir.DeleteChain):
                chains.remove(op.chain)
            elif isinstance(op, ir.AddSet):
                sets.add(op.set.name)
            elif isinstance(op, ir.DeleteSet):
                sets.remove(op.set)
        self.batches.append(list(ops))

    def tables(self, prefix: str) -> dict[str, tuple[Collection[str], Collection[str]]]:
        self.reads += 1
        if self.fail == "dump":
            raise NftError("nf_tables dump failed: Operation not permitted", None, 1)
        return {t: (set(c), set(s)) for t, (c, s) in self.objects.items() if t.startswith(prefix)}

    def close(self) -> None:
        self.closed = True


def _proxier(nft: FakeNft, metrics: ProxyMetrics | None = None) -> tuple[Proxier, NftBackend]:
    backend = NftBackend(nft)
    engine = Proxier(
        CONFIG, backend, metrics=metrics or ProxyMetrics(CollectorRegistry()), history=History()
    )
    return engine, backend


def _prime(p: Proxier) -> None:
    p.on_service(
        sync(
            service("web", "10.0.0.10", node_port=30080),
            service("dns", "10.0.0.53", 53, proto="UDP"),
            service("db", "10.0.0.54", 5432),
        )
    )
    p.on_slice(
        sync(
            endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.3"]),
            endpoint_slice("dns-1", "dns", ["10.88.1.4"], 53, proto="UDP"),
            endpoint_slice("db-1", "db", ["10.88.1.5"], 5432),
        )
    )


def _tables_of(ops: Sequence[ir.Op]) -> set[str]:
    return {op.table for op in ops}


def test_first_sync_is_full_then_a_change_touches_its_shard_only() -> None:
    nft = FakeNft()
    p, backend = _proxier(nft)
    _prime(p)
    first = p.sync()
    assert first.full and not first.error, first.error
    assert nft.reads == 1 and len(nft.batches) == 1
    assert nft_rules.SHARED_TABLE in nft.objects
    assert "dnat to 10.88.1.3:8080" in first.text and first.lines == len(nft.batches[0])
    assert backend.rule_count() > 0
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.9"])))
    second = p.sync()
    assert not second.full and not second.error, second.error
    assert nft.reads == 1  # a partial sync does not read the kernel
    assert second.changed == ("default/web",)
    touched = _tables_of(nft.batches[-1]) - {nft_rules.SHARED_TABLE}
    assert touched == {nft_rules.shard_table(nft_rules.shard_of(("default", "web")))}
    assert len(nft.batches[-1]) < len(nft.batches[0])
    assert "dnat to 10.88.1.9:8080" in second.text and "dnat to 10.88.1.3" not in second.text
    assert "delete chain" in second.text and second.removed[0].endswith("__10.88.1.3/8080")
    # nothing owed: the periodic (partial) sync sends nothing
    third = p.sync(reason="periodic")
    assert not third.full and not third.error and len(nft.batches) == 2 and third.text == ""


def test_a_refused_batch_changes_nothing_and_the_next_sync_is_full() -> None:
    nft = FakeNft()
    metrics = ProxyMetrics(CollectorRegistry())
    p, backend = _proxier(nft, metrics)
    _prime(p)
    assert not p.sync().error
    applied = backend.applied
    nft.fail = nft_rules.shard_table(nft_rules.shard_of(("default", "db")))
    p.on_slice(modified(endpoint_slice("db-1", "db", ["10.88.1.6"], 5432)))
    failed = p.sync()
    assert failed.error and "No such file" in failed.error and not failed.full
    assert backend.applied is applied and p.pending.full
    assert ("default", "db") in p.pending.services
    registry = metrics.registry
    assert registry.get_sample_value("kubeproxy_sync_proxy_rules_nftables_sync_failures_total")
    assert registry.get_sample_value("kubeproxy_sync_partial_proxy_rules_duration_seconds_count")
    nft.fail = None
    retry = p.sync()
    assert retry.full and not retry.error
    assert nft.reads == 2  # the full retry read the kernel again
    assert "dnat to 10.88.1.6:5432" in retry.text


def test_full_sync_removes_what_the_kernel_has_and_we_do_not_want() -> None:
    nft = FakeNft()
    # left by an earlier run: a Service chain gone meanwhile, and a shard table we don't use
    spare = f"{nft_rules.SHARED_TABLE}-99"
    nft.objects[spare] = ({"old"}, set())
    p, _ = _proxier(nft)
    _prime(p)
    record = p.sync()
    assert record.full and not record.error
    assert spare not in nft.objects


def test_nftables_metrics_have_upstream_names_and_no_iptables_ones() -> None:
    m = ProxyMetrics(CollectorRegistry())
    NftBackend(FakeNft()).register_metrics(m.registry)
    names = {metric.name for metric in m.registry.collect()}
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures" in names
    assert "kubeproxy_sync_proxy_rules_duration_seconds" in names
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds" in names
    assert "kubeproxy_network_programming_duration_seconds" in names
    assert not {n for n in names if "iptables" in n}
    m.record_sync(0.5, full=True, ok=True, now=100.0)
    assert m.registry.get_sample_value("kubeproxy_sync_proxy_rules_last_timestamp_seconds") == 100


def test_cleanup_deletes_our_tables_only() -> None:
    nft = FakeNft()
    shared = nft_rules.SHARED_TABLE
    for table in (shared, f"{shared}-03", f"{shared}x", "other"):
        nft.objects[table] = ({"c"}, set())
    assert nftables_ops(nft.tables("")) == [
        ir.DeleteTable(shared),
        ir.DeleteTable(f"{shared}-03"),
    ]
    assert cleanup_nftables(nft) == 2
    assert set(nft.objects) == {f"{shared}x", "other"}
    assert cleanup_nftables(nft) == 0 and len(nft.batches) == 1


SETTINGS = ProxySettings(
    mode="nftables",
    cluster_cidr="10.88.0.0/16",
    min_sync_period=0.2,
    sync_period=0.5,
    metrics_bind_address="",
)


def _daemon(nft: FakeNft) -> ProxyDaemon:
    kernel = Kernel()
    return ProxyDaemon(
        SETTINGS,
        client=cast(ApiClient, object()),
        backend=NftBackend(nft),
        node_name="n1",
        addresses=lambda: ("192.168.1.10",),
        conntrack_tool=Conntrack(run=kernel),
    )


async def test_daemon_syncs_partially_each_period_and_fully_once() -> None:
    nft = FakeNft()
    d = _daemon(nft)
    assert d.loop.full_period == FULL_SYNC_PERIOD and d.loop.partial_every == 0.5
    d.on_service(sync(service("web", "10.0.0.10")))
    d.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    d.on_node(sync(node("n1", "192.168.1.10")))
    task = asyncio.create_task(d.sync_loop())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(d.history) < 3:
            assert loop.time() < deadline, d.history.to_json()
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    records = d.history.to_json()[::-1]
    assert records[0]["full"] and "startup" in records[0]["reasons"]
    assert [r["full"] for r in records[1:3]] == [False, False]
    assert all(r["reasons"] == ["periodic"] and not r["error"] for r in records[1:3])
    assert nft.reads == 1 and len(nft.batches) == 1
    assert d.health.last_updated > 0


def test_daemon_views_in_nftables_mode() -> None:
    nft = FakeNft()
    d = _daemon(nft)
    d.on_service(sync(service("web", "10.0.0.10")))
    d.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    assert not d.proxier.sync().error
    rules = d.views.rules(with_text=True)
    assert rules["mode"] == "nftables" and rules["backend"] == "netlink"
    assert (rules["sizeUnit"], rules["textKind"]) == ("ops", "nftables batch")
    assert rules["ruleCount"] > 0 and "dnat to 10.88.1.2:8080" in rules["history"][0]["text"]
    explained = d.views.explain("default", "web")
    assert explained is not None and explained["found"], explained
    assert "10.88.1.2" in json.dumps(explained)
    assert d.views.explain("default", "missing") is None
    traced = d.views.trace("192.168.1.10", "10.0.0.10", 80, "TCP")
    assert set(traced["outcomes"]) == {"dnat 10.88.1.2:8080"}, traced


def test_a_failed_read_of_the_kernel_fails_the_full_sync_without_a_batch() -> None:
    nft = FakeNft()
    nft.fail = "dump"
    p, backend = _proxier(nft)
    _prime(p)
    record = p.sync()
    assert record.full and "reading the pykube-proxy* tables" in record.error
    assert "Operation not permitted" in record.error and nft.batches == []
    assert backend.applied is None and p.pending.full
    nft.fail = None
    assert not p.sync().error and len(nft.batches) == 1
