"""iptables mode's backend under the sync engine, with a recording kernel: full first, partial
for changes, failures named by line, rolled back and followed by a full sync, latency and
conntrack bookkeeping."""

from __future__ import annotations

import datetime as dt
import subprocess

from prometheus_client import CollectorRegistry

from net.proxy import model
from net.proxy.conntrack import Conntrack
from net.proxy.history import History
from net.proxy.iptables.backend import IptablesBackend
from net.proxy.iptables.executor import NFT, Executor, committed_tables, table_sections
from net.proxy.metrics import ProxyMetrics
from net.proxy.proxier import Proxier

from ..objects import Kernel, added, deleted, endpoint_slice, modified, service, sync

CONFIG = model.ProxyConfig(node_name="n1", node_ips=("192.168.1.10",), cluster_cidr="10.88.0.0/16")


def _proxier(kernel: Kernel, now: list[float] | None = None) -> Proxier:
    clock = now or [1000.0]
    return Proxier(
        CONFIG,
        IptablesBackend(Executor(NFT, run=kernel)),
        metrics=ProxyMetrics(CollectorRegistry()),
        history=History(),
        conntrack_tool=Conntrack(run=kernel),
        clock=lambda: clock[0],
    )


def _metric(p: Proxier, name: str, **labels: str) -> float:
    value = p.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _primed(kernel: Kernel) -> Proxier:
    p = _proxier(kernel)
    p.on_service(sync(service("web", "10.0.0.10"), service("dns", "10.0.0.53", 53, proto="UDP")))
    p.on_slice(
        sync(
            endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.3"]),
            endpoint_slice("dns-1", "dns", ["10.88.1.4", "10.88.1.5"], 53, proto="UDP"),
        )
    )
    return p


def test_first_sync_is_full_and_ensures_the_builtin_jumps() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    assert p.dirty
    record = p.sync()
    assert record.full and not record.error
    assert record.changed == ("default/dns", "default/web")
    text = kernel.restores[0]
    assert "*nat" in text and ":KUBE-SERVICES" in text and "-d 10.0.0.10 " in text
    # the missing builtin jumps go into the same restore: no iptables call per jump
    assert '-I PREROUTING 1 -m comment --comment "kubernetes service portals"' in text
    assert not [c for c in kernel.commands if c[0] == "iptables-nft"]
    assert not p.dirty
    assert _metric(p, "kubeproxy_sync_full_proxy_rules_duration_seconds_count") == 1
    assert _metric(p, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") == 1000.0


def test_endpoint_change_is_a_partial_sync_of_that_service_only() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    p.sync()
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    record = p.sync()
    assert not record.full and not record.error
    assert record.changed == ("default/web",)
    text = kernel.restores[-1]
    assert "--to-destination 10.88.1.3" not in text and "dns" not in text
    assert record.removed and all(f"-X {c}" in text for c in record.removed)
    assert "-A KUBE-SERVICES" not in text  # the big shared chain is not rewritten
    assert _metric(p, "kubeproxy_sync_partial_proxy_rules_duration_seconds_count") == 1


def test_an_unchanged_relist_owes_nothing() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    p.sync()
    p.on_service(sync(service("web", "10.0.0.10"), service("dns", "10.0.0.53", 53, proto="UDP")))
    p.on_slice(
        sync(
            endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.3"]),
            endpoint_slice("dns-1", "dns", ["10.88.1.4", "10.88.1.5"], 53, proto="UDP"),
        )
    )
    assert not p.dirty


def test_failed_restore_names_the_line_and_owes_a_full_sync() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    p.sync()
    p.on_service(added(service("api", "10.0.0.20")))
    kernel.fail_next = (
        "iptables-nft-restore v1.8.9 (nf_tables): bad rule\nError occurred at line: 2\n"
    )
    record = p.sync()
    assert record.error.startswith("iptables-nft-restore failed at line 2: ")
    assert not record.full
    assert _metric(p, "kubeproxy_sync_proxy_rules_iptables_restore_failures_total") == 1
    assert _metric(p, "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total") == 1
    assert p.dirty and p.pending.full and ("default", "api") in p.pending.services
    retry = p.sync()
    assert retry.full and not retry.error
    assert "-d 10.0.0.20 " in kernel.restores[-1]
    assert [r["error"] != "" for r in p.history.to_json()] == [False, True, False]


def test_network_programming_latency_from_the_trigger_annotation() -> None:
    kernel = Kernel()
    now = [1000.0]
    p = _proxier(kernel, now)
    p.on_service(sync(service("web", "10.0.0.10")))
    p.on_slice(sync())
    p.sync()
    trigger = dt.datetime.fromtimestamp(997.5, dt.UTC).isoformat().replace("+00:00", "Z")
    p.on_slice(added(endpoint_slice("web-1", "web", ["10.88.1.2"], trigger=trigger)))
    p.sync()
    assert _metric(p, "kubeproxy_network_programming_duration_seconds_count") == 1
    assert _metric(p, "kubeproxy_network_programming_duration_seconds_sum") == 2.5


def test_removed_udp_endpoint_flushes_its_conntrack_entries() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    p.sync()
    kernel.commands.clear()
    p.on_slice(modified(endpoint_slice("dns-1", "dns", ["10.88.1.4"], 53, proto="UDP")))
    record = p.sync()
    flushes = [c for c in kernel.commands if c[0] == "conntrack"]
    assert flushes == [
        ["conntrack", "-D", "-p", "udp", "--orig-dst", "10.0.0.53", "--orig-port-dst", "53",
         "--dst-nat", "10.88.1.5"],
    ]  # fmt: skip
    assert record.conntrack_flushed == 1


def test_deleted_service_and_slices_leave_no_rules_of_it() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    p.sync()
    p.on_service(deleted(service("web", "10.0.0.10")))
    p.on_slice(deleted(endpoint_slice("web-1", "web", [])))
    record = p.sync()
    assert record.changed == ("default/web",)
    assert record.removed and all(c.startswith("KUBE-") for c in record.removed)
    assert ("default", "web") not in p.state.services


def test_bad_objects_are_skipped_not_raised() -> None:
    kernel = Kernel()
    p = _proxier(kernel)
    p.on_service(sync({"metadata": {"name": "x"}, "spec": {"clusterIP": "nope"}}, {}))
    p.on_slice(sync({"metadata": {"name": "s"}, "endpoints": "garbage"}))
    record = p.sync()
    assert not record.error and record.services == 0


def test_tables_committed_before_the_failure_are_rolled_back() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    p.sync()
    p.on_slice(modified(endpoint_slice("web-1", "web", [])))  # REJECT (filter) + nat chains go
    kernel.fail_next = "Chain 'X' does not exist\nError occurred at line: {last_commit}\n"
    record = p.sync()
    assert record.error
    undo = kernel.restores[-1]  # the only restore that went in after the failure
    assert undo.startswith("*filter") and "*nat" not in undo
    assert '-D KUBE-SERVICES -m comment --comment "default/web:p has no endpoints"' in undo
    retry = p.sync()
    assert retry.full and not retry.error


def test_committed_tables_and_sections() -> None:
    text = "*filter\n-A X\nCOMMIT\n*nat\n-A Y\nCOMMIT\n"
    assert committed_tables(text, 6) == ["filter"]
    assert committed_tables(text, 2) == []
    assert committed_tables(text, None) == []
    assert table_sections(text, ["nat"]) == "*nat\n-A Y\nCOMMIT\n"


def test_null_annotations_on_a_slice_are_no_trigger_time() -> None:
    p = _proxier(Kernel())
    p.on_service(sync(service("web", "10.0.0.10")))
    raw = endpoint_slice("web-1", "web", ["10.88.1.2"])
    raw["metadata"]["annotations"] = None
    p.on_slice(sync(raw))
    assert not p.sync().error and p.pending.triggers == []


def test_an_unexpected_error_in_a_sync_is_a_failed_sync_not_a_dead_loop() -> None:
    kernel = Kernel()
    p = _primed(kernel)
    p.sync()
    p.on_service(added(service("api", "10.0.0.20")))

    def broken(text: str, *, counters: bool = False) -> None:
        raise RuntimeError("netlink said no")

    backend = p.backend
    assert isinstance(backend, IptablesBackend)
    backend.executor.restore = broken  # type: ignore[method-assign]
    record = p.sync()
    assert record.error == "RuntimeError: netlink said no"
    assert p.pending.full and ("default", "api") in p.pending.services


def test_a_full_sync_inserts_only_the_builtin_jumps_the_kernel_lacks() -> None:
    kernel = Kernel()
    kernel.saved["nat"] = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n"
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
        "COMMIT\n"
    )
    p = _primed(kernel)
    p.sync()
    text = kernel.restores[0]
    assert "-I PREROUTING 1 " not in text
    assert '-I OUTPUT 1 -m comment --comment "kubernetes service portals"' in text


def test_a_failed_save_fails_the_full_sync_rather_than_doubling_jumps() -> None:
    kernel = Kernel()

    def failing_save(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        if cmd[0].endswith("-save"):
            return subprocess.CompletedProcess(cmd, 4, "", "Another app holds the lock")
        return kernel(cmd, **kw)

    p = Proxier(
        CONFIG,
        IptablesBackend(Executor(NFT, run=failing_save)),
        metrics=ProxyMetrics(CollectorRegistry()),
        history=History(),
        clock=lambda: 1000.0,
    )
    p.on_service(sync(service("web", "10.0.0.10")))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    record = p.sync()
    assert record.error and "lock" in record.error
    assert not kernel.restores
    assert p.dirty
