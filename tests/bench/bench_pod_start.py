"""Pod start latency, pykubelet vs the real Go kubelet: same machine, same containerd, same control
plane, same run. Run as root from the checkout: `python -m tests.bench.bench_pod_start`
(or `make bench`, which builds the node binaries first). See tests/bench/README.md.

For each agent in turn (pykubelet as node bench-py, then the Go kubelet as bench-go; only the agent
under test runs), pods (busybox `sleep 3600`, IfNotPresent, nodeSelector on the node) are created
through the apiserver while a watch on their namespace timestamps every change:
  (a) `sequential`: one pod at a time, the next created once the previous is Running and Ready;
  (b) `paced`: pods created at a fixed rate (1/s), then the agent's CPU and RSS with all of them
      running, and again after a steady-state window.
By default each create is jittered (a: a uniform 0-1 s pause first; b: a uniform instant within its
1 s slot, same seed for both agents) so that a fixed rhythm cannot line up with an agent's periodic
loops or with the whole seconds of creationTimestamp; --strict turns that off.
Two latency definitions are reported per pod:
  client: from just before the client's create call (monotonic clock) to the arrival of the first
          watch event with phase=Running and condition Ready=True;
  api:    from metadata.creationTimestamp (second resolution, truncated: overstates by 0-1 s) to
          the wall-clock arrival of that same watch event.
A bare-CRI floor (RunPodSandbox + CreateContainer + StartContainer of the same pod, straight to
containerd) is measured first for context.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import random
import shutil
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cluster import hostops, images, process
from cluster import up as cluster
from cluster.spec import ClusterSpec, Ports, free_ports
from cri import api
from cri.client import RuntimeClient
from tests.bench import gokubelet

PY_NODE = "bench-py"
GO_NODE = "bench-go"
BUSYBOX = images.BUSYBOX_IMAGE
RESULTS = Path(__file__).parent / "results"
Json = dict[str, Any]


class BenchError(RuntimeError):
    """The benchmark could not measure something; the message says what and what was seen."""


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---- statistics ----------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> Json:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


# ---- process accounting --------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    at: float
    """monotonic seconds"""
    cpu_s: float
    """utime + stime of the process itself"""
    children_cpu_s: float
    """cutime + cstime: CPU of children it has waited for (exec'd helpers)"""
    rss_kib: int
    threads: int


def proc_sample(pid: int) -> ProcSample:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as e:
        raise BenchError(f"agent process {pid} is gone: {e}") from None
    # fields after "comm)": state=0 ... utime=11 stime=12 cutime=13 cstime=14 (0-based)
    utime, stime, cutime, cstime = (int(x) for x in stat[11:15])
    rss = threads = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return ProcSample(
        at=time.monotonic(),
        cpu_s=(utime + stime) / CLK_TCK,
        children_cpu_s=(cutime + cstime) / CLK_TCK,
        rss_kib=rss,
        threads=threads,
    )


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: the machine is shared, so say how busy it was."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def cpu_between(a: ProcSample, b: ProcSample) -> Json:
    wall = b.at - a.at
    cpu = b.cpu_s - a.cpu_s
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "children_cpu_s": round(b.children_cpu_s - a.children_cpu_s, 3),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 2) if wall > 0 else None,
    }


# ---- API access ----------------------------------------------------------------------------
def admin_client(spec: ClusterSpec, *, timeout: float = 10.0) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(spec.pki / "server-ca.crt"))
    ctx.load_cert_chain(str(spec.pki / "admin.crt"), str(spec.pki / "admin.key"))
    return httpx.AsyncClient(
        base_url=spec.server,
        verify=ctx,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )


async def api_call(
    client: httpx.AsyncClient, method: str, path: str, body: Json | None = None
) -> Json:
    r = await client.request(method, path, json=body)
    if r.status_code >= 300:
        raise BenchError(f"{method} {path}: HTTP {r.status_code}: {r.text[:400]}")
    result: Json = r.json() if r.content else {}
    return result


async def wait_until(
    pred: Callable[[], Awaitable[Any]], limit_s: float, what: str, interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + limit_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await pred()
        if last:
            return last
        await asyncio.sleep(interval)
    raise BenchError(f"{what}: not within {limit_s:.0f}s (last: {last!r})")


def parse_time(ts: str | None) -> float | None:
    if not ts:
        return None
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def pod_body(name: str, node: str, *, token_volume: bool = False) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "pod-start-bench"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Always",
            # Off by default: pykubelet has no volume support yet and would skip the projected
            # kube-api-access volume (TokenRequest + ConfigMap + tmpfs) the Go kubelet sets up.
            "automountServiceAccountToken": token_volume,
            # busybox `sleep` as PID 1 ignores SIGTERM: keep the deletes between scenarios short.
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "sleep",
                    "image": BUSYBOX,
                    "command": ["sleep", "3600"],
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
        },
    }


def running_and_ready(pod: Json) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


@dataclass
class PodTiming:
    name: str
    create_mono: float = 0.0
    create_wall: float = 0.0
    created_mono: float | None = None
    """when the create call returned"""
    creation_ts: float | None = None
    scheduled_mono: float | None = None
    """first watch event with spec.nodeName set"""
    running_mono: float | None = None
    running_wall: float | None = None
    ready_transition_ts: float | None = None
    """the Ready condition's lastTransitionTime (second resolution, written by the agent)"""
    last_status: Json = field(default_factory=dict)

    @property
    def client_s(self) -> float | None:
        return None if self.running_mono is None else self.running_mono - self.create_mono

    @property
    def api_s(self) -> float | None:
        if self.running_wall is None or self.creation_ts is None:
            return None
        return self.running_wall - self.creation_ts

    @property
    def schedule_s(self) -> float | None:
        return None if self.scheduled_mono is None else self.scheduled_mono - self.create_mono

    @property
    def ready_transition_s(self) -> float | None:
        if self.ready_transition_ts is None or self.creation_ts is None:
            return None
        return self.ready_transition_ts - self.creation_ts

    def record(self) -> Json:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "name": self.name,
            "client_s": r(self.client_s),
            "api_s": r(self.api_s),
            "schedule_s": r(self.schedule_s),
            "create_call_s": r(
                None if self.created_mono is None else self.created_mono - self.create_mono
            ),
            "ready_transition_minus_creation_s": r(self.ready_transition_s),
            "create_wall": r(self.create_wall),
        }


class PodWatch:
    """A watch on one namespace's pods, timestamping the first Running+Ready event of each pod."""

    def __init__(self, client: httpx.AsyncClient, ns: str) -> None:
        self.client = client
        self.ns = ns
        self.timings: dict[str, PodTiming] = {}
        self.running: dict[str, asyncio.Event] = {}
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    def expect(self, name: str) -> PodTiming:
        t = self.timings.setdefault(name, PodTiming(name))
        self.running.setdefault(name, asyncio.Event())
        return t

    async def start(self) -> None:
        listing = await api_call(self.client, "GET", f"/api/v1/namespaces/{self.ns}/pods")
        rv = str(listing["metadata"]["resourceVersion"])
        self._task = asyncio.create_task(self._run(rv))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self, rv: str) -> None:
        try:
            while True:
                params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "600"}
                async with self.client.stream(
                    "GET",
                    f"/api/v1/namespaces/{self.ns}/pods",
                    params=params,
                    timeout=httpx.Timeout(10.0, read=None),
                ) as resp:
                    if resp.status_code != 200:
                        raise BenchError(f"watch pods in {self.ns}: HTTP {resp.status_code}")
                    async for line in resp.aiter_lines():
                        if line.strip():
                            rv = self._on_event(json.loads(line)) or rv
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self.error = e
            for ev in self.running.values():
                ev.set()

    def _on_event(self, event: Json) -> str | None:
        now_mono, now_wall = time.monotonic(), time.time()
        obj: Json = event.get("object") or {}
        if event.get("type") == "ERROR":
            raise BenchError(f"watch error event: {obj}")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        t = self.timings.get(name) if name else None
        if t is not None:
            if t.creation_ts is None:
                t.creation_ts = parse_time(meta.get("creationTimestamp"))
            if t.scheduled_mono is None and (obj.get("spec") or {}).get("nodeName"):
                t.scheduled_mono = now_mono
            t.last_status = obj.get("status") or {}
            if t.running_mono is None and running_and_ready(obj):
                t.running_mono, t.running_wall = now_mono, now_wall
                for c in t.last_status.get("conditions") or []:
                    if c.get("type") == "Ready":
                        t.ready_transition_ts = parse_time(c.get("lastTransitionTime"))
                self.running[str(name)].set()
        rv = meta.get("resourceVersion")
        return str(rv) if rv else None

    async def wait_running(self, names: Sequence[str], limit_s: float) -> None:
        async def all_running() -> None:
            for n in names:
                await self.running[n].wait()
                if self.error is not None:
                    raise BenchError(f"pod watch failed: {self.error!r}")

        try:
            await asyncio.wait_for(all_running(), limit_s)
        except TimeoutError:
            late = {n: self.timings[n].last_status for n in names if not self.running[n].is_set()}
            raise BenchError(
                f"{len(late)} of {len(names)} pods not Running+Ready within {limit_s:.0f}s; "
                f"their last status: {json.dumps(late)[:3000]}"
            ) from None


# ---- a benchmark context: one cluster, one agent at a time ---------------------------------
@dataclass
class Bench:
    spec: ClusterSpec
    client: httpx.AsyncClient
    notes: list[str] = field(default_factory=list)
    token_volume: bool = False

    async def new_namespace(self, prefix: str) -> str:
        ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
        await api_call(
            self.client,
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        )

        async def sa() -> bool:
            r = await self.client.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default")
            return r.status_code == 200

        await wait_until(sa, 30, f"default ServiceAccount in {ns}")
        return ns

    async def create_pod(self, watch: PodWatch, name: str, node: str) -> None:
        t = watch.expect(name)
        t.create_wall, t.create_mono = time.time(), time.monotonic()
        await api_call(
            self.client,
            "POST",
            f"/api/v1/namespaces/{watch.ns}/pods",
            pod_body(name, node, token_volume=self.token_volume),
        )
        t.created_mono = time.monotonic()

    async def node_schedulable(self, node: str, limit_s: float = 60) -> None:
        """Ready and without NoSchedule taints (the not-ready taint goes a moment after Ready)."""

        async def ok() -> bool:
            n = await api_call(self.client, "GET", f"/api/v1/nodes/{node}")
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
            taints = [t for t in n["spec"].get("taints") or [] if t["effect"] == "NoSchedule"]
            return ready and not taints

        await wait_until(ok, limit_s, f"node {node} Ready and untainted")

    async def cleanup(self, ns: str, *, limit_s: float = 120) -> Json:
        """Delete the namespace's pods; wait until they are gone from the API and from CRI."""
        t0 = time.monotonic()
        await api_call(self.client, "DELETE", f"/api/v1/namespaces/{ns}/pods")

        async def api_gone() -> bool:
            items = (await api_call(self.client, "GET", f"/api/v1/namespaces/{ns}/pods"))["items"]
            return not items

        try:
            await wait_until(api_gone, limit_s, f"pods of {ns} gone from the API", 0.5)
        except BenchError:
            pods = (await api_call(self.client, "GET", f"/api/v1/namespaces/{ns}/pods"))["items"]
            raise BenchError(
                f"pods of {ns} not deleted within {limit_s:.0f}s; still there: "
                + json.dumps([(p["metadata"]["name"], p.get("status")) for p in pods])[:3000]
            ) from None
        api_s = time.monotonic() - t0
        forced = 0
        sel = {"io.kubernetes.pod.namespace": ns}
        async with RuntimeClient(f"unix://{self.spec.containerd_socket}") as rt:

            async def cri_gone() -> bool:
                sandboxes = await rt.list_pod_sandbox(
                    filter=api.PodSandboxFilter(label_selector=sel)
                )
                containers = await rt.list_containers(
                    filter=api.ContainerFilter(label_selector=sel)
                )
                return not sandboxes and not containers

            try:
                await wait_until(cri_gone, limit_s, f"CRI sandboxes of {ns} removed", 0.5)
            except BenchError as e:
                # Keep the next scenario clean: remove what the agent left behind, and say so.
                sandboxes = await rt.list_pod_sandbox(
                    filter=api.PodSandboxFilter(label_selector=sel)
                )
                for sb in sandboxes:
                    with contextlib.suppress(Exception):
                        await rt.stop_pod_sandbox(sb.id)
                    with contextlib.suppress(Exception):
                        await rt.remove_pod_sandbox(sb.id)
                forced = len(sandboxes)
                self.notes.append(f"{e}; the bench removed {forced} sandboxes itself")
                say(self.notes[-1])
        cri_s = time.monotonic() - t0
        with contextlib.suppress(BenchError):
            await api_call(self.client, "DELETE", f"/api/v1/namespaces/{ns}")
        return {
            "api_gone_s": round(api_s, 3),
            "cri_gone_s": round(cri_s, 3),
            "cri_forced_removals": forced,
        }


async def scenario_sequential(
    b: Bench, node: str, n: int, per_pod_timeout: float, jitter: random.Random | None
) -> Json:
    """One pod at a time; with `jitter`, a uniform 0-1 s pause before each create (see --strict)."""
    load = loadavg()
    ns = await b.new_namespace("seq")
    watch = PodWatch(b.client, ns)
    await watch.start()
    try:
        for i in range(n):
            name = f"seq-{i:03d}"
            if jitter is not None:
                await asyncio.sleep(jitter.random())
            await b.create_pod(watch, name, node)
            await watch.wait_running([name], per_pod_timeout)
    finally:
        await watch.stop()
    timings = [watch.timings[f"seq-{i:03d}"] for i in range(n)]
    load_after = loadavg()
    cleanup = await b.cleanup(ns)
    return {**result_of(ns, timings, cleanup), "loadavg": [load, load_after]}


async def scenario_paced(
    b: Bench,
    node: str,
    n: int,
    interval: float,
    limit_s: float,
    pid: Callable[[], int],
    steady: float,
    jitter: random.Random | None,
) -> Json:
    """`n` pods at one per `interval`; with `jitter`, each at a uniform random instant of its
    slot [i, i+1) * interval (same mean rate), else exactly at its slot's start (see --strict)."""
    load = loadavg()
    ns = await b.new_namespace("paced")
    watch = PodWatch(b.client, ns)
    await watch.start()
    names = [f"paced-{i:03d}" for i in range(n)]
    for name in names:
        watch.expect(name)
    before = proc_sample(pid())
    tasks: list[asyncio.Task[None]] = []
    try:
        t0 = time.monotonic()
        for i, name in enumerate(names):
            offset = jitter.random() if jitter is not None else 0.0
            delay = t0 + (i + offset) * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(b.create_pod(watch, name, node)))
        await asyncio.gather(*tasks)
        await watch.wait_running(names, limit_s)
        all_running = proc_sample(pid())
        say(f"  all {n} pods Running+Ready; {steady:.0f}s of steady state")
        await asyncio.sleep(steady)
        after_steady = proc_sample(pid())
    finally:
        for task in tasks:
            task.cancel()
        await watch.stop()
    timings = [watch.timings[name] for name in names]
    load_after = loadavg()
    cleanup = await b.cleanup(ns)
    out = {**result_of(ns, timings, cleanup), "loadavg": [load, load_after]}
    out["resources"] = {
        "create_to_all_running": cpu_between(before, all_running),
        "steady_state": cpu_between(all_running, after_steady),
        "rss_kib": {
            "before": before.rss_kib,
            "all_running": all_running.rss_kib,
            "after_steady": after_steady.rss_kib,
        },
        "threads": {"before": before.threads, "after_steady": after_steady.threads},
        "cpu_s_total_at_end": round(after_steady.cpu_s, 3),
    }
    return out


def result_of(ns: str, timings: list[PodTiming], cleanup: Json) -> Json:
    client = [t.client_s for t in timings if t.client_s is not None]
    apis = [t.api_s for t in timings if t.api_s is not None]
    sched = [t.schedule_s for t in timings if t.schedule_s is not None]
    return {
        "namespace": ns,
        "client_s": summary(client),
        "api_s": summary(apis),
        "schedule_s": summary(sched),
        "cleanup": cleanup,
        "pods": [t.record() for t in timings],
    }


async def run_agent(
    b: Bench,
    node: str,
    args: argparse.Namespace,
    pid: Callable[[], int],
) -> Json:
    await b.node_schedulable(node)
    out: Json = {"node": node}
    jitter = None if args.strict else random.Random(args.seed)
    say(f"{node}: warm-up pod (not counted)")
    out["warmup"] = await scenario_sequential(b, node, 1, args.pod_timeout, None)
    say(f"{node}: (a) {args.sequential} pods one at a time")
    out["sequential"] = await scenario_sequential(
        b, node, args.sequential, args.pod_timeout, jitter
    )
    s = out["sequential"]["client_s"]
    say(f"  p50 {s['p50']:.3f}s p90 {s['p90']:.3f}s p99 {s['p99']:.3f}s (client->Running)")
    say(f"{node}: (b) {args.paced} pods at {1 / args.interval:g}/s")
    out["paced"] = await scenario_paced(
        b,
        node,
        args.paced,
        args.interval,
        args.paced * args.interval + args.pod_timeout,
        pid,
        args.steady,
        jitter,
    )
    s = out["paced"]["client_s"]
    say(f"  p50 {s['p50']:.3f}s p90 {s['p90']:.3f}s p99 {s['p99']:.3f}s (client->Running)")
    return out


# ---- bare CRI floor ------------------------------------------------------------------------
async def cri_floor(spec: ClusterSpec, runs: int) -> Json:
    """RunPodSandbox + CreateContainer + StartContainer of the bench pod, straight to containerd."""
    rows: list[Json] = []
    logs = spec.directory / "cri-floor-logs"
    async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
        await rt.wait_ready(30)

        async def network_ready() -> bool:
            conds = (await rt.status()).status.conditions
            return any(c.type == "NetworkReady" and c.status for c in conds)

        await wait_until(network_ready, 30, "containerd NetworkReady (a CNI config loaded)")
        for i in range(runs):
            uid = str(uuid.uuid4())
            (logs / uid).mkdir(parents=True)
            name = f"floor-{i}"
            labels = {
                "io.kubernetes.pod.name": name,
                "io.kubernetes.pod.namespace": "bench-cri-floor",
                "io.kubernetes.pod.uid": uid,
            }
            sandbox_config = api.PodSandboxConfig(
                metadata=api.PodSandboxMetadata(
                    name=name, namespace="bench-cri-floor", uid=uid, attempt=0
                ),
                hostname=name,
                log_directory=str(logs / uid),
                labels=labels,
                linux=api.LinuxPodSandboxConfig(),
            )
            config = api.ContainerConfig(
                metadata=api.ContainerMetadata(name="sleep", attempt=0),
                image=api.ImageSpec(image=BUSYBOX),
                command=["sleep", "3600"],
                log_path="sleep/0.log",
                labels={**labels, "io.kubernetes.container.name": "sleep"},
            )
            t0 = time.monotonic()
            sandbox = await rt.run_pod_sandbox(sandbox_config)
            t1 = time.monotonic()
            try:
                cid = await rt.create_container(sandbox, config, sandbox_config)
                t2 = time.monotonic()
                await rt.start_container(cid)
                t3 = time.monotonic()
                rows.append(
                    {
                        "run_pod_sandbox_s": round(t1 - t0, 4),
                        "create_container_s": round(t2 - t1, 4),
                        "start_container_s": round(t3 - t2, 4),
                        "total_s": round(t3 - t0, 4),
                    }
                )
            finally:
                with contextlib.suppress(Exception):
                    await rt.stop_pod_sandbox(sandbox)
                await rt.remove_pod_sandbox(sandbox)
    totals = [r["total_s"] for r in rows]
    return {
        "runs": rows,
        "total_s": summary(totals),
        "run_pod_sandbox_p50_s": percentile([r["run_pod_sandbox_s"] for r in rows], 50),
        "create_container_p50_s": percentile([r["create_container_s"] for r in rows], 50),
        "start_container_p50_s": percentile([r["start_container_s"] for r in rows], 50),
    }


# ---- report --------------------------------------------------------------------------------
def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def markdown(results: Json) -> str:
    agents = results["agents"]
    py, go = agents.get("pykubelet") or {}, agents.get("go-kubelet") or {}
    lines = [
        "| scenario | latency | pct | pykubelet (s) | Go kubelet (s) | py/Go |",
        "|---|---|---|---:|---:|---:|",
    ]
    labels = {"sequential": "(a) 1 at a time", "paced": "(b) 1 pod/s"}
    for scenario, label in labels.items():
        for kind, desc in (("client_s", "client create → Running+Ready"), ("api_s", "api")):
            if kind == "api_s":
                desc = "creationTimestamp → Running+Ready"
            for pct in ("p50", "p90", "p99"):
                a = (py.get(scenario) or {}).get(kind, {}).get(pct)
                b = (go.get(scenario) or {}).get(kind, {}).get(pct)
                lines.append(f"| {label} | {desc} | {pct} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    for scenario, label in labels.items():
        a = (py.get(scenario) or {}).get("schedule_s", {}).get("p50")
        b = (go.get(scenario) or {}).get("schedule_s", {}).get("p50")
        lines.append(
            f"| {label} | client create → scheduled (context) | p50 | {fmt(a)} | {fmt(b)} | - |"
        )
    floor = results.get("cri_floor") or {}
    if floor:
        f50 = floor["total_s"]["p50"]
        lines.append(
            f"| bare CRI floor (n={floor['total_s']['n']}) | RunPodSandbox+Create+Start | p50 "
            f"| {fmt(f50)} | {fmt(f50)} | - |"
        )
    lines += [
        "",
        f"| resources, (b) with {results['parameters']['paced']} pods "
        "| pykubelet | Go kubelet | py/Go |",
        "|---|---:|---:|---:|",
    ]

    def res(agent: Json, *keys: str) -> float | None:
        cur: Any = (agent.get("paced") or {}).get("resources") or {}
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        return None if cur is None else float(cur)

    rows: list[tuple[str, tuple[str, ...], float, int]] = [
        ("CPU s, create → all Running", ("create_to_all_running", "cpu_s"), 1, 2),
        ("CPU % of a core, steady state", ("steady_state", "cpu_percent_of_one_core"), 1, 1),
        ("RSS MiB before the pods", ("rss_kib", "before"), 1024, 1),
        ("RSS MiB with all Running", ("rss_kib", "all_running"), 1024, 1),
        ("RSS MiB after steady state", ("rss_kib", "after_steady"), 1024, 1),
    ]
    for label, keys, div, digits in rows:
        a, b = res(py, *keys), res(go, *keys)
        a = None if a is None else a / div
        b = None if b is None else b / div
        lines.append(f"| {label} | {fmt(a, digits)} | {fmt(b, digits)} | {ratio(a, b)} |")
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------
def start_pykubelet(spec: ClusterSpec) -> float:
    t0 = time.monotonic()
    cluster.start_node(spec, PY_NODE, say=lambda m: say(f"  {m}"))
    return time.monotonic() - t0


def live_pid(d: process.Daemon) -> Callable[[], int]:
    def pid() -> int:
        p = d.pid()
        if p is None:
            raise BenchError(f"{d.name} is not running; last lines of {d.log_file}:\n{d.tail(40)}")
        return p

    return pid


async def measure(spec: ClusterSpec, args: argparse.Namespace, results: Json) -> None:
    if args.cri_floor:
        say(f"bare CRI floor: {args.cri_floor} pods straight through containerd")
        results["cri_floor"] = await cri_floor(spec, args.cri_floor)
        say(f"  p50 {results['cri_floor']['total_s']['p50']:.3f}s")
    async with admin_client(spec) as client:
        b = Bench(spec, client, results["notes"], token_volume=args.token_volume)
        if "py" in args.agents:
            say(f"starting pykubelet as {PY_NODE}")
            d = cluster.agent_daemon(spec, PY_NODE)
            try:
                ready_s = await asyncio.to_thread(start_pykubelet, spec)
                out = await run_agent(b, PY_NODE, args, live_pid(d))
                out["start_to_ready_s"] = round(ready_s, 2)
                results["agents"]["pykubelet"] = out
            except BenchError as e:
                results["agents"]["pykubelet"] = {"error": str(e), "log_tail": d.tail(60)}
                say(f"pykubelet run failed: {e}\n--- {d.log_file} (tail) ---\n{d.tail(60)}")
            finally:
                process.stop(d)
                note_mounts(spec, results, "pykubelet")
        if "go" in args.agents:
            say(f"starting the Go kubelet as {GO_NODE}")
            ports = free_ports(2)
            go = gokubelet.GoKubelet(spec, GO_NODE, port=ports[0], healthz_port=ports[1])
            tunables = gokubelet.KernelTunables()
            try:
                ready_s = await asyncio.to_thread(go.start)
                say(f"  node {GO_NODE} Ready ({ready_s:.1f}s after the kubelet started)")
                out = await run_agent(b, GO_NODE, args, live_pid(go.daemon))
                out["start_to_ready_s"] = round(ready_s, 2)
                out["kubelet_config"] = go.config()
                out["kubelet_command"] = go.command(go.root / "kubelet-config.yaml")
                results["agents"]["go-kubelet"] = out
            except (BenchError, process.ComponentFailed) as e:
                results["agents"]["go-kubelet"] = {"error": str(e), "log_tail": go.daemon.tail(60)}
                say(f"Go kubelet run failed: {e}")
            finally:
                go.stop()
                changed = tunables.restore()
                if changed:
                    results["notes"].append(f"restored sysctls the Go kubelet changed: {changed}")
                note_mounts(spec, results, "the Go kubelet")


def note_mounts(spec: ClusterSpec, results: Json, agent: str) -> None:
    left = hostops.mounts_under(spec.directory)
    if left:
        results["notes"].append(f"mounts under the cluster dir after {agent} stopped: {left}")
        say(results["notes"][-1])


def host_facts() -> Json:
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_pod_start", description=__doc__)
    p.add_argument("--agents", default="py,go", help="comma list of py, go (default: both)")
    p.add_argument("--sequential", type=int, default=15, help="pods in scenario (a)")
    p.add_argument("--paced", type=int, default=30, help="pods in scenario (b)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between (b) creates")
    p.add_argument("--steady", type=float, default=60.0, help="steady-state window, seconds")
    p.add_argument("--pod-timeout", type=float, default=120.0, help="max wait per pod, seconds")
    p.add_argument(
        "--strict",
        action="store_true",
        help="no jitter: (a) creates the next pod as soon as the previous is Ready, (b) exactly "
        "every --interval s; a fixed rhythm can line up with an agent's periodic loops and with "
        "the whole seconds of creationTimestamp, so results shift from run to run",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the jitter (same for both agents)")
    p.add_argument("--cri-floor", type=int, default=5, help="bare CRI runs (0: skip)")
    p.add_argument(
        "--token-volume",
        action="store_true",
        help="let pods mount the service-account token volume (pykubelet does not support it yet)",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON")
    p.add_argument(
        "--logs", type=Path, default=None, help="copy the cluster's logs here before teardown"
    )
    args = p.parse_args(argv)
    args.agents = {a.strip() for a in args.agents.split(",") if a.strip()}
    if not args.agents <= {"py", "go"}:
        p.error("--agents takes py and/or go")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        say("must run as root (starts containerd, kubelets, pod networking)")
        return 2
    binaries = cluster.find_binaries(build=False, say=say)
    if "go" in args.agents and not binaries.k8s("kubelet").exists():
        say("the Go kubelet is not built: run `bash cluster/gobuild/build.sh node`")
        return 2
    # Both agents on the same pod network: the harness's provisional conflist (Debian bridge +
    # host-local + portmap). pykubelet's own CNI plugin needs the pykubelet agent running, so the
    # Go kubelet could not start pods with it.
    os.environ["PYKUBELET_CNI"] = "provisional"
    directory = Path(tempfile.mkdtemp(prefix="pykbench-"))
    spec = cluster.make_spec(
        directory,
        binaries,
        ports=Ports(*free_ports(6)),
        node_names=(PY_NODE, GO_NODE),
        bridge="pykbench0",
    )
    stamp = datetime.datetime.now(datetime.UTC)
    results: Json = {
        "benchmark": "pod_start",
        "started": stamp.isoformat(timespec="seconds"),
        "host": host_facts(),
        "parameters": {
            "sequential": args.sequential,
            "paced": args.paced,
            "interval_s": args.interval,
            "steady_s": args.steady,
            "image": BUSYBOX,
            "agents": sorted(args.agents),
            "automount_service_account_token": args.token_volume,
            "termination_grace_period_s": 2,
            "cni": "provisional conflist (bridge + host-local + portmap), both agents",
            "jitter": not args.strict,
            "seed": args.seed,
        },
        "agents": {},
        "notes": [],
    }
    logs = args.logs or Path(tempfile.gettempdir()) / f"pykbench-logs-{stamp:%Y%m%dT%H%M%SZ}"
    code = 0
    try:
        cluster.up(spec, with_nodes=False, say=lambda m: say(f"  {m}"))
        asyncio.run(measure(spec, args, results))
    except Exception as e:
        say(f"benchmark failed: {e!r}")
        results["error"] = str(e)
        code = 1
    finally:
        with contextlib.suppress(OSError):
            shutil.copytree(spec.logs, logs, dirs_exist_ok=True)
        cluster.down(directory, say=lambda m: say(f"  {m}"))
        left = gokubelet.remove_cgroup_root()
        if left:
            results["notes"].append(f"cgroups left behind: {left}")
    say(f"cluster logs copied to {logs}")
    for agent, out in results["agents"].items():
        if "error" in out:
            code = 1
            say(f"{agent}: {out['error']}")
    results["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"pod_start-{stamp:%Y-%m-%d}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    print(table)
    say(f"results written to {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
