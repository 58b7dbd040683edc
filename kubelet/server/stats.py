"""`/stats/summary` and `/metrics/resource`: node CPU and memory from /proc, pods' and containers'
from CRI stats, in upstream's Summary JSON and metrics-server's text names. Reads; never acts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError
from kube.jsontypes import JsonObject
from kubelet.runtime import labels

_CPU_FIELDS = 8  # user nice system idle iowait irq softirq steal
_BUSY = (0, 1, 2, 5, 6, 7)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def proc_cpu_ns(stat_text: str) -> int:
    """Busy CPU time of the whole host from /proc/stat's `cpu` line, in nanoseconds."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1 : 1 + _CPU_FIELDS]]
            ticks = sum(values[i] for i in _BUSY if i < len(values))
            return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    raise ValueError("/proc/stat has no cpu line")


def proc_memory(meminfo_text: str) -> JsonObject:
    """Summary MemoryStats from /proc/meminfo (working set = used minus inactive file pages)."""
    kb = {}
    for line in meminfo_text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            kb[name] = int(parts[0]) * 1024
    total = kb.get("MemTotal", 0)
    usage = total - kb.get("MemFree", 0)
    working = max(0, usage - kb.get("Inactive(file)", 0))
    return {
        "availableBytes": max(0, total - working),
        "usageBytes": usage,
        "workingSetBytes": working,
        "rssBytes": kb.get("AnonPages", 0),
    }


@dataclass
class NodeCPU:
    """Keeps the previous /proc/stat sample so usageNanoCores is a rate between scrapes."""

    proc: Path = Path("/proc")
    last: tuple[float, int] | None = None

    def sample(self) -> JsonObject:
        now = time.time()
        used = proc_cpu_ns((self.proc / "stat").read_text())
        cores = 0
        if self.last is not None and now > self.last[0]:
            cores = int((used - self.last[1]) / (now - self.last[0]))
        self.last = (now, used)
        return {"time": rfc3339(now), "usageCoreNanoSeconds": used, "usageNanoCores": max(0, cores)}


CPU_CACHE_NS = 10 * 60 * 1_000_000_000
"""Samples older than this are dropped from the rate cache (upstream's defaultCachePeriod)."""


@dataclass
class ContainerCPURates:
    """usageNanoCores of containers as upstream's CRI stats provider computes it when the runtime
    does not report it: the growth of usageCoreNanoSeconds between this sample and the cached
    previous one of the same container ID, over the samples' timestamps."""

    cache: dict[str, tuple[int, int, int | None]] = field(default_factory=dict)
    """container ID -> (sample timestamp ns, usageCoreNanoSeconds, the rate computed then)."""

    def rate(self, cid: str, cpu: api.CpuUsage) -> int | None:
        """The container's usageNanoCores now; None until two samples exist, after the counter
        went backwards (a new cgroup), or without usageCoreNanoSeconds. The runtime's own value
        wins when it sends one. A repeated sample (same timestamp) keeps the last rate."""
        if cpu.HasField("usage_nano_cores"):
            return int(cpu.usage_nano_cores.value)
        if not cpu.HasField("usage_core_nano_seconds"):
            return None
        used, ts = int(cpu.usage_core_nano_seconds.value), int(cpu.timestamp)
        prev = self.cache.get(cid)
        if prev is not None and ts == prev[0] and used == prev[1]:
            return prev[2]
        if prev is None or used < prev[1] or ts <= prev[0]:
            self.cache[cid] = (ts, used, None)
            return None
        cores = int((used - prev[1]) / (ts - prev[0]) * 1_000_000_000)
        self.cache[cid] = (ts, used, cores)
        return cores

    def forget_older(self, now_ns: int, period_ns: int = CPU_CACHE_NS) -> None:
        """Drop samples older than `period_ns` (containers that are gone)."""
        self.cache = {k: v for k, v in self.cache.items() if now_ns - v[0] <= period_ns}


def _cpu(c: api.CpuUsage, nano_cores: int | None) -> JsonObject:
    out: JsonObject = {
        "time": rfc3339(c.timestamp / 1e9),
        "usageCoreNanoSeconds": c.usage_core_nano_seconds.value,
    }
    if nano_cores is not None:
        out["usageNanoCores"] = nano_cores
    return out


def _memory(m: api.MemoryUsage) -> JsonObject:
    out: JsonObject = {
        "time": rfc3339(m.timestamp / 1e9),
        "workingSetBytes": m.working_set_bytes.value,
        "usageBytes": m.usage_bytes.value,
        "rssBytes": m.rss_bytes.value,
        "pageFaults": m.page_faults.value,
        "majorPageFaults": m.major_page_faults.value,
    }
    if m.HasField("available_bytes"):
        out["availableBytes"] = m.available_bytes.value
    return out


@dataclass
class PodStats:
    ref: JsonObject
    start: str
    containers: list[JsonObject] = field(default_factory=list)
    cpu_ns: int = 0
    nano_cores: int | None = None
    """The sum of the containers' usageNanoCores; None while none of them has one yet."""
    working_set: int = 0
    usage: int = 0
    time: str = ""

    def add(self, s: api.ContainerStats, nano_cores: int | None = None) -> None:
        meta = s.attributes.metadata
        self.containers.append(
            {
                "name": meta.name,
                "startTime": self.start,
                "cpu": _cpu(s.cpu, nano_cores),
                "memory": _memory(s.memory),
            }
        )
        self.cpu_ns += s.cpu.usage_core_nano_seconds.value
        if nano_cores is not None:
            self.nano_cores = (self.nano_cores or 0) + nano_cores
        self.working_set += s.memory.working_set_bytes.value
        self.usage += s.memory.usage_bytes.value
        self.time = rfc3339(s.cpu.timestamp / 1e9) if s.cpu.timestamp else rfc3339(time.time())

    def summary(self) -> JsonObject:
        t = self.time or rfc3339(time.time())
        return {
            "podRef": self.ref,
            "startTime": self.start,
            "containers": self.containers,
            "cpu": {"time": t, "usageCoreNanoSeconds": self.cpu_ns}
            | ({} if self.nano_cores is None else {"usageNanoCores": self.nano_cores}),
            "memory": {"time": t, "workingSetBytes": self.working_set, "usageBytes": self.usage},
        }


async def pod_stats(
    runtime: RuntimeClient, rates: ContainerCPURates | None = None
) -> list[PodStats]:
    """Per pod (ready sandboxes) with its running containers' CPU and memory from CRI; `rates`
    (kept between calls) gives the containers' usageNanoCores."""
    rates = rates if rates is not None else ContainerCPURates()
    ready = api.PodSandboxState.Value("SANDBOX_READY")
    boxes = await runtime.list_pod_sandbox(
        filter=api.PodSandboxFilter(state=api.PodSandboxStateValue(state=ready)), deadline=10
    )
    pods: dict[str, PodStats] = {}
    for b in boxes:
        ref = {"name": b.metadata.name, "namespace": b.metadata.namespace, "uid": b.metadata.uid}
        pods[b.id] = PodStats(ref, rfc3339(b.created_at / 1e9))
    for s in await runtime.list_container_stats(deadline=10):
        owner = pods.get(_sandbox_of(s, boxes))
        if owner is not None:
            owner.add(s, rates.rate(s.attributes.id, s.cpu))
    rates.forget_older(time.time_ns())
    return list(pods.values())


def _sandbox_of(s: api.ContainerStats, boxes: Iterable[api.PodSandbox]) -> str:
    uid = s.attributes.labels.get(labels.POD_UID, "")
    for b in boxes:
        if b.metadata.uid == uid:
            return str(b.id)
    return ""


async def summary(
    runtime: RuntimeClient,
    node: str,
    cpu: NodeCPU,
    boot: float,
    rates: ContainerCPURates | None = None,
) -> JsonObject:
    mem = proc_memory(_read("/proc/meminfo"))
    mem["time"] = rfc3339(time.time())
    node_stats: JsonObject = {
        "nodeName": node,
        "startTime": rfc3339(boot),
        "cpu": cpu.sample(),
        "memory": mem,
        "systemContainers": [],
    }
    try:
        pods = [p.summary() for p in await pod_stats(runtime, rates)]
    except CRIError:
        pods = []
    return {"node": node_stats, "pods": pods}


class _Fixed(Collector):
    def __init__(self, families: list[GaugeMetricFamily | CounterMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        return self.families


def resource_metrics(data: JsonObject) -> bytes:
    """metrics-server's `/metrics/resource` from a summary (upstream names, with timestamps)."""
    ncpu = CounterMetricFamily("node_cpu_usage_seconds", "Cumulative cpu time consumed by the node")
    nmem = GaugeMetricFamily("node_memory_working_set_bytes", "Current working set of the node")
    ccpu = CounterMetricFamily(
        "container_cpu_usage_seconds", "Cumulative cpu time consumed by the container", labels=_L3
    )
    cmem = GaugeMetricFamily(
        "container_memory_working_set_bytes", "Current working set of the container", labels=_L3
    )
    pcpu = CounterMetricFamily(
        "pod_cpu_usage_seconds", "Cumulative cpu time consumed by the pod", labels=_L2
    )
    pmem = GaugeMetricFamily(
        "pod_memory_working_set_bytes", "Current working set of the pod", labels=_L2
    )
    err = GaugeMetricFamily(
        "resource_scrape_error", "1 if there was an error while getting metrics"
    )
    now = time.time()
    n = data["node"]
    ncpu.add_metric([], n["cpu"]["usageCoreNanoSeconds"] / 1e9, timestamp=now)
    nmem.add_metric([], n["memory"]["workingSetBytes"], timestamp=now)
    for p in data["pods"]:
        pl = [p["podRef"]["namespace"], p["podRef"]["name"]]
        pcpu.add_metric(pl, p["cpu"]["usageCoreNanoSeconds"] / 1e9, timestamp=now)
        pmem.add_metric(pl, p["memory"]["workingSetBytes"], timestamp=now)
        for c in p["containers"]:
            cl = [c["name"], *pl]
            ccpu.add_metric(cl, c["cpu"]["usageCoreNanoSeconds"] / 1e9, timestamp=now)
            cmem.add_metric(cl, c["memory"]["workingSetBytes"], timestamp=now)
    err.add_metric([], 0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([ccpu, cmem, ncpu, nmem, pcpu, pmem, err]))
    return generate_latest(registry)


_L3 = ["container", "namespace", "pod"]
_L2 = ["namespace", "pod"]


def boot_time(proc: Path = Path("/proc")) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return time.time()


async def running_counts(runtime: RuntimeClient) -> tuple[int, dict[str, int]]:
    """kubelet_running_pods and kubelet_running_containers{container_state} from CRI lists."""
    ready = api.PodSandboxState.Value("SANDBOX_READY")
    boxes = await runtime.list_pod_sandbox(deadline=10)
    counts = {"created": 0, "running": 0, "exited": 0, "unknown": 0}
    for c in await runtime.list_containers(deadline=10):
        name = api.ContainerState.Name(c.state).removeprefix("CONTAINER_").lower()
        counts[name] = counts.get(name, 0) + 1
    return sum(1 for b in boxes if b.state == ready), counts
