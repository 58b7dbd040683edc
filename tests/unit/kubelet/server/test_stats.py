"""Per-container usageNanoCores in /stats/summary: a rate between two CRI samples of
usageCoreNanoSeconds per container ID, as upstream's CRI stats provider computes it."""

from __future__ import annotations

from typing import Any

from cri import api
from kubelet.server.stats import ContainerCPURates, PodStats

S = 1_000_000_000


def cpu(ts: int, used: int | None, nano_cores: int | None = None) -> api.CpuUsage:
    c = api.CpuUsage(timestamp=ts)
    if used is not None:
        c.usage_core_nano_seconds.CopyFrom(api.UInt64Value(value=used))
    if nano_cores is not None:
        c.usage_nano_cores.CopyFrom(api.UInt64Value(value=nano_cores))
    return c


def test_first_sample_has_no_rate_the_second_has() -> None:
    rates = ContainerCPURates()
    assert rates.rate("c1", cpu(10 * S, 5 * S)) is None
    # 0.5 s of CPU over 2 s: a quarter of a core
    assert rates.rate("c1", cpu(12 * S, 5 * S + S // 2)) == 250_000_000
    assert rates.rate("c1", cpu(13 * S, 7 * S + S // 2)) == 2_000_000_000


def test_containers_are_kept_apart() -> None:
    rates = ContainerCPURates()
    rates.rate("a", cpu(10 * S, 0))
    rates.rate("b", cpu(10 * S, 0))
    assert rates.rate("a", cpu(11 * S, S // 10)) == 100_000_000
    assert rates.rate("b", cpu(11 * S, S)) == 1_000_000_000


def test_counter_going_backwards_restarts_the_rate() -> None:
    rates = ContainerCPURates()
    rates.rate("c", cpu(10 * S, 9 * S))
    assert rates.rate("c", cpu(11 * S, S)) is None
    assert rates.rate("c", cpu(12 * S, 2 * S)) == 1_000_000_000


def test_repeated_sample_keeps_the_last_rate_and_older_is_ignored() -> None:
    rates = ContainerCPURates()
    rates.rate("c", cpu(10 * S, 0))
    assert rates.rate("c", cpu(12 * S, S)) == 500_000_000
    assert rates.rate("c", cpu(12 * S, S)) == 500_000_000  # the runtime's cached stats again
    assert rates.rate("c", cpu(11 * S, 2 * S)) is None  # a timestamp going backwards


def test_runtime_value_wins_and_missing_counter_gives_nothing() -> None:
    rates = ContainerCPURates()
    assert rates.rate("c", cpu(10 * S, 0, nano_cores=42)) == 42
    assert rates.rate("d", cpu(10 * S, None)) is None
    assert rates.cache == {}


def test_forget_older_drops_gone_containers() -> None:
    rates = ContainerCPURates()
    rates.rate("old", cpu(1 * S, 0))
    rates.rate("new", cpu(700 * S, 0))
    rates.forget_older(now_ns=702 * S, period_ns=600 * S)
    assert set(rates.cache) == {"new"}


def _stats(name: str, cid: str, ts: int, used: int) -> api.ContainerStats:
    s = api.ContainerStats(cpu=cpu(ts, used))
    s.attributes.id = cid
    s.attributes.metadata.name = name
    return s


def test_pod_summary_sums_known_rates_and_omits_unknown() -> None:
    ref: dict[str, Any] = {"name": "p", "namespace": "ns", "uid": "u"}
    first = PodStats(ref, "2026-11-23T12:00:00Z")
    first.add(_stats("a", "ca", 10 * S, 0), None)
    out = first.summary()
    assert "usageNanoCores" not in out["cpu"]
    assert "usageNanoCores" not in out["containers"][0]["cpu"]
    pod = PodStats(ref, "2026-11-23T12:00:00Z")
    pod.add(_stats("a", "ca", 12 * S, S), 500_000_000)
    pod.add(_stats("b", "cb", 12 * S, S), 250_000_000)
    pod.add(_stats("c", "cc", 12 * S, S), None)
    out = pod.summary()
    assert out["cpu"]["usageNanoCores"] == 750_000_000
    by_name = {c["name"]: c["cpu"] for c in out["containers"]}
    assert by_name["a"]["usageNanoCores"] == 500_000_000
    assert "usageNanoCores" not in by_name["c"]
    assert by_name["a"]["usageCoreNanoSeconds"] == S
