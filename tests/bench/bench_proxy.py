"""Service proxy benchmark: `pykubelet proxy` vs the real kube-proxy v1.36, both in iptables mode
or (`--mode nftables`) both in nftables mode. Not part of `make test`; see tests/bench/README.md.
As root: `python -m tests.bench.bench_proxy [--mode nftables]`.

1. Python micro benchmark of the rule model (always): build + render of a full sync at N
   Services, and of a one-Service change at N (incremental build + partial render).
2. With a control plane (`cluster.up` on free ports, no containerd, no nodes): N selector-less
   Services with hand-made EndpointSlices (2 endpoints each) are created through the API. Then,
   for each agent in turn, in a fresh netns made by the bench (the apiserver port forwarded in,
   so the host's rules are never touched): start the agent, wait for its first (full) sync, then
   change one Service's EndpointSlice `--changes` times and time each resulting sync. Durations
   come from each agent's own kubeproxy_sync_proxy_rules_duration_seconds histogram.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import gc
import json
import os
import platform
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cluster import process, proxyproc
from cluster import up as cluster
from cluster.nsforward import forward_command
from cluster.spec import ClusterSpec, Ports, free_ports
from net.proxy.iptables.render import render
from net.proxy.iptables.rules import build
from net.proxy.model import ClusterState, Endpoint, ProxyConfig, Service, ServicePort

Json = dict[str, Any]
NAMESPACE = "proxy-bench"
NODE = "bench-proxy-node"
NODE_IP = "192.168.251.1"
SERVICE_CIDR = "10.96.0.0/16"
ENDPOINT_PORT = 8080
RESULTS = Path(__file__).parent / "results"


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """The benchmark could not measure something; the message says what and what was seen."""


def service_ip(i: int) -> str:
    return f"10.96.{(i + 10) // 250}.{(i + 10) % 250 + 1}"


def endpoint_ip(i: int, j: int, generation: int = 0) -> str:
    return f"10.{200 + j + 2 * generation}.{i // 250}.{i % 250 + 1}"


# ---- 1. the rule model alone --------------------------------------------------------------------


def micro(n: int, repeats: int) -> Json:
    """Median milliseconds of the pure Python side (no kernel)."""
    config = ProxyConfig(NODE, (NODE_IP,), cluster_cidr="10.88.0.0/16")
    services: dict[tuple[str, str], Service] = {}
    endpoints: dict[tuple[str, str], tuple[Endpoint, ...]] = {}
    for i in range(n):
        key = (NAMESPACE, f"svc-{i}")
        services[key] = Service(
            NAMESPACE, f"svc-{i}", "ClusterIP", service_ip(i), (ServicePort("http", "TCP", 80),)
        )
        endpoints[key] = tuple(
            Endpoint(endpoint_ip(i, j), ENDPOINT_PORT, "http", "TCP") for j in range(2)
        )
    state = ClusterState(services, endpoints)
    full_build, full_render, part_build, part_render = [], [], [], []
    lines = 0
    rs = rs2 = None
    for r in range(repeats):
        # drop the previous round's rules first: freeing 10k fragments is not sync work
        rs = rs2 = None
        gc.collect()
        t0 = time.perf_counter()
        rs = build(state, config)
        t1 = time.perf_counter()
        restore = render(rs, None, full=True)
        t2 = time.perf_counter()
        full_build.append(t1 - t0)
        full_render.append(t2 - t1)
        lines = restore.lines
        key = (NAMESPACE, f"svc-{(n // 2 + r) % n}")
        changed_eps = dict(endpoints)
        changed_eps[key] = (Endpoint(endpoint_ip(0, 0, 7), ENDPOINT_PORT, "http", "TCP"),)
        t3 = time.perf_counter()
        rs2 = build(ClusterState(services, changed_eps), config, previous=rs, changed={key})
        t4 = time.perf_counter()
        partial = render(rs2, rs, full=False)
        t5 = time.perf_counter()
        part_build.append(t4 - t3)
        part_render.append(t5 - t4)
        if partial.full or partial.changed != (key,):
            raise BenchError(f"one-Service change rendered {partial}")

    def ms(xs: list[float]) -> float:
        return round(statistics.median(xs) * 1000, 2)

    return {
        "services": n,
        "repeats": repeats,
        "full_build_ms": ms(full_build),
        "full_render_ms": ms(full_render),
        "full_restore_lines": lines,
        "one_change_build_ms": ms(part_build),
        "one_change_render_ms": ms(part_render),
        "one_change_total_ms": ms([a + b for a, b in zip(part_build, part_render, strict=True)]),
        "one_change_restore_lines": partial.lines,
    }


def micro_nft(n: int, repeats: int) -> Json:
    """nftables mode's pure Python side (median ms): build of the rule set, the full batch
    (ops) and its netlink encoding; a one-Service change's build, partial batch, encoding."""
    from net.nft.encode import encode
    from net.proxy.nftables import batch as nft_batch
    from net.proxy.nftables import rules as nft_rules

    config = ProxyConfig(NODE, (NODE_IP,), cluster_cidr="10.88.0.0/16")
    services: dict[tuple[str, str], Service] = {}
    endpoints: dict[tuple[str, str], tuple[Endpoint, ...]] = {}
    for i in range(n):
        key = (NAMESPACE, f"svc-{i}")
        services[key] = Service(
            NAMESPACE, f"svc-{i}", "ClusterIP", service_ip(i), (ServicePort("http", "TCP", 80),)
        )
        endpoints[key] = tuple(
            Endpoint(endpoint_ip(i, j), ENDPOINT_PORT, "http", "TCP") for j in range(2)
        )
    state = ClusterState(services, endpoints)
    full_build, full_batch, full_encode, part_build, part_batch, part_encode = (
        [],
        [],
        [],
        [],
        [],
        [],
    )
    ops_full = ops_part = 0
    for r in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        rs = nft_rules.build(state, config)
        t1 = time.perf_counter()
        ops = nft_batch.full_batch(rs, {})
        t2 = time.perf_counter()
        encode(ops)
        t3 = time.perf_counter()
        full_build.append(t1 - t0)
        full_batch.append(t2 - t1)
        full_encode.append(t3 - t2)
        ops_full = len(ops)
        key = (NAMESPACE, f"svc-{(n // 2 + r) % n}")
        changed_eps = dict(endpoints)
        changed_eps[key] = (Endpoint(endpoint_ip(0, 0, 7), ENDPOINT_PORT, "http", "TCP"),)
        t4 = time.perf_counter()
        rs2 = nft_rules.build(
            ClusterState(services, changed_eps), config, previous=rs, changed={key}
        )
        t5 = time.perf_counter()
        batch = nft_batch.partial_batch(rs2, rs)
        t6 = time.perf_counter()
        sets = {(t.name, d.name): d for t in rs.tables() for d, _ in t.sets}
        t7 = time.perf_counter()
        encode(batch.ops, sets=sets)
        t8 = time.perf_counter()
        part_build.append(t5 - t4)
        part_batch.append(t6 - t5)
        part_encode.append(t8 - t7)
        ops_part = len(batch.ops)
        if batch.full:
            raise BenchError(f"one-Service change made a full batch of {len(batch.ops)} ops")

    def ms(xs: list[float]) -> float:
        return round(statistics.median(xs) * 1000, 2)

    return {
        "services": n,
        "repeats": repeats,
        "mode": "nftables",
        "full_build_ms": ms(full_build),
        "full_batch_ms": ms(full_batch),
        "full_encode_ms": ms(full_encode),
        "full_ops": ops_full,
        "one_change_build_ms": ms(part_build),
        "one_change_batch_ms": ms(part_batch),
        "one_change_encode_ms": ms(part_encode),
        "one_change_total_ms": ms(
            [a + b + c for a, b, c in zip(part_build, part_batch, part_encode, strict=True)]
        ),
        "one_change_ops": ops_part,
    }


# ---- 2. API objects -----------------------------------------------------------------------------


def admin_client(spec: ClusterSpec) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(spec.pki / "server-ca.crt"))
    ctx.load_cert_chain(str(spec.pki / "admin.crt"), str(spec.pki / "admin.key"))
    limits = httpx.Limits(max_connections=16)
    return httpx.AsyncClient(base_url=spec.server, verify=ctx, timeout=60.0, limits=limits)


def service_body(i: int) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"svc-{i}"},
        "spec": {
            "clusterIP": service_ip(i),
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    }


def slice_body(i: int, generation: int = 0) -> Json:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"svc-{i}-bench",
            "labels": {
                "kubernetes.io/service-name": f"svc-{i}",
                "endpointslice.kubernetes.io/managed-by": "pykubelet-bench",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": ENDPOINT_PORT, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [endpoint_ip(i, j, generation)], "conditions": {"ready": True}}
            for j in range(2)
        ],
    }


async def _post(client: httpx.AsyncClient, path: str, body: Json) -> None:
    for attempt in range(5):
        r = await client.post(path, json=body)
        if r.status_code in (200, 201, 409):
            return
        if r.status_code in (429, 500, 503, 504) and attempt < 4:
            await asyncio.sleep(0.5 * (attempt + 1))
            continue
        raise BenchError(f"POST {path} {body['metadata']['name']}: {r.status_code} {r.text[:300]}")


async def create_objects(spec: ClusterSpec, start: int, stop: int) -> float:
    """Services svc-start..svc-(stop-1) and their EndpointSlices; returns the seconds taken."""
    t0 = time.monotonic()
    async with admin_client(spec) as client:
        if start == 0:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            await _post(client, "/api/v1/namespaces", ns)
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
                "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]},
            }
            await _post(client, "/api/v1/nodes", node)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(start, stop):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await _post(client, f"/api/v1/namespaces/{NAMESPACE}/services", service_body(i))
                await _post(
                    client,
                    f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
                    slice_body(i),
                )
                if i % 1000 == 999:
                    say(f"  {i + 1} Services created")

        await asyncio.gather(*(worker() for _ in range(12)))
    return time.monotonic() - t0


async def change_slice(spec: ClusterSpec, i: int, generation: int) -> None:
    path = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices/svc-{i}-bench"
    async with admin_client(spec) as client:
        r = await client.get(path)
        if r.status_code != 200:
            raise BenchError(f"GET {path}: {r.status_code}")
        body = slice_body(i, generation)
        body["metadata"]["resourceVersion"] = r.json()["metadata"]["resourceVersion"]
        r = await client.put(path, json=body)
        if r.status_code != 200:
            raise BenchError(f"PUT {path}: {r.status_code} {r.text[:300]}")


# ---- 3. agents in a netns -----------------------------------------------------------------------


@dataclasses.dataclass
class Agent:
    name: str  # "kube-proxy" or "pykubelet"
    netns: str
    daemon: process.Daemon
    command: list[str]


def kube_proxy_command(spec: ClusterSpec, mode: str = "iptables") -> list[str]:
    p = spec.ports
    return [
        str(spec.binaries.k8s("kube-proxy")),
        f"--kubeconfig={spec.kubeconfig('kube-proxy')}",
        f"--hostname-override={NODE}",
        f"--cluster-cidr={spec.cluster_cidr}",
        f"--proxy-mode={mode}",
        f"--bind-address={NODE_IP}",
        f"--healthz-bind-address=127.0.0.1:{p.proxy_healthz}",
        f"--metrics-bind-address=127.0.0.1:{p.proxy_metrics}",
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        "--v=2",
    ]


def pykubelet_command(spec: ClusterSpec, mode: str = "iptables") -> list[str]:
    # kube-proxy v1.36 never does a periodic full resync in large-cluster mode (over 1000
    # endpoints); a 1 h full-sync period keeps pykubelet's from landing inside the measurement.
    # (nftables mode's periodic sync is partial, full ones are hourly, as upstream's.)
    extra = [f"--bind-address={NODE_IP}"]
    if mode == "iptables":
        extra.append("--iptables-sync-period=1h")
    return proxyproc.proxy_command(spec, NODE, mode=mode, extra_args=extra)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([-+0-9.eEinfNa]+)$")


def metrics(spec: ClusterSpec, netns: str) -> dict[str, float]:
    url = f"http://127.0.0.1:{spec.ports.proxy_metrics}/metrics"
    status, body = proxyproc.get_in_netns(netns, url, timeout=5)
    if status != 200:
        raise BenchError(f"metrics {status}")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        m = _SAMPLE.match(line)
        # unlabelled samples, or kube-proxy's ip_family="IPv4" ones (it also syncs IPv6)
        if m and (not m.group(2) or m.group(2) == '{ip_family="IPv4"}'):
            out[m.group(1)] = float(m.group(3))
    return out


def sync_counts(spec: ClusterSpec, netns: str) -> tuple[float, float]:
    try:
        m = metrics(spec, netns)
    except (OSError, BenchError):
        return (0.0, 0.0)
    name = "kubeproxy_sync_proxy_rules_duration_seconds"
    return m.get(f"{name}_count", 0.0), m.get(f"{name}_sum", 0.0)


def synced_past(spec: ClusterSpec, netns: str, count: float) -> Callable[[], bool]:
    return lambda: sync_counts(spec, netns)[0] > count


def wait(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


def proc_stats(pid: int | None) -> Json:
    if pid is None:
        return {}
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        status = Path(f"/proc/{pid}/status").read_text()
        rss = re.search(r"VmRSS:\s+(\d+)", status)
        hwm = re.search(r"VmHWM:\s+(\d+)", status)
        return {
            "cpu_s": round((int(stat[11]) + int(stat[12])) / tick, 2),
            "rss_mib": round(int(rss.group(1)) / 1024, 1) if rss else None,
            "peak_rss_mib": round(int(hwm.group(1)) / 1024, 1) if hwm else None,
        }
    except (OSError, IndexError, ValueError):
        return {}


def agent_pid(agent: Agent) -> int | None:
    """The agent itself (process.start runs it under nsenter, which execs)."""
    return agent.daemon.pid()


def nft_ruleset(netns: str) -> str:
    r = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "list", "ruleset"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r.stdout


_RULE_LINE = re.compile(r"^\t\t(?!type |policy |comment |elements |flags |timeout |typeof )\S")


def nft_stats(netns: str) -> Json:
    """Tables, chains and rules in the netns's nftables ruleset (both agents' own tables)."""
    text = nft_ruleset(netns)
    lines = text.splitlines()
    return {
        "tables": sum(1 for line in lines if line.startswith("table ")),
        "chains": sum(1 for line in lines if line.startswith("\tchain ")),
        "sets_and_maps": sum(1 for line in lines if line.startswith(("\tset ", "\tmap "))),
        "rules": sum(1 for line in lines if _RULE_LINE.match(line)),
    }


def chain_stats(netns: str, mode: str = "iptables") -> Json:
    if mode == "nftables":
        return {"nft": nft_stats(netns)}
    out: Json = {}
    for tool in ("iptables-nft-save", "iptables-legacy-save"):
        r = subprocess.run(
            ["ip", "netns", "exec", netns, tool, "-t", "nat"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        text = r.stdout
        out[tool] = {
            "chains": sum(1 for line in text.splitlines() if line.startswith(":KUBE-")),
            "rules": sum(1 for line in text.splitlines() if line.startswith("-A KUBE-")),
            "cluster_ip_rules": text.count("cluster IP"),
        }
    return out


def run_agent(
    spec: ClusterSpec,
    name: str,
    n: int,
    changes: int,
    generation: int,
    timeout: float,
    mode: str = "iptables",
) -> Json:
    netns = f"pkpb{os.getpid() % 100000}{name[:2]}"
    fwd = process.Daemon(f"nsforward-{netns}", spec.run, spec.logs)
    daemon = process.Daemon(f"bench-{name}", spec.run, spec.logs)
    cmd = kube_proxy_command(spec, mode) if name == "kube-proxy" else pykubelet_command(spec, mode)
    agent = Agent(name, netns, daemon, cmd)
    out: Json = {"command": cmd, "netns": netns}
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", netns, "addr", "add", f"{NODE_IP}/32", "dev", "lo"], check=True)
        process.start(fwd, forward_command(f"/run/netns/{netns}", [spec.ports.apiserver]))
        t0 = time.monotonic()
        process.start(daemon, cmd, netns=netns)
        waited = wait(
            lambda: sync_counts(spec, netns)[0] >= 1 and _has_rules(netns, n, mode),
            timeout,
            f"{name}'s first sync with {n} Services",
            interval=1.0,
        )
        count, total = sync_counts(spec, netns)
        out["first_sync_wall_s"] = round(waited, 2)
        out["syncs_before_changes"] = count
        out["first_sync_s"] = round(total / max(count, 1.0), 3) if count <= 1 else None
        out["sync_sum_before_changes_s"] = round(total, 3)
        m = metrics(spec, netns)
        full = m.get("kubeproxy_sync_full_proxy_rules_duration_seconds_sum")
        full_n = m.get("kubeproxy_sync_full_proxy_rules_duration_seconds_count")
        if full is not None and full_n:
            out["full_sync_s"] = round(full / full_n, 3)
            out["full_syncs"] = full_n
        out["after_first_sync"] = proc_stats(agent_pid(agent))
        say(f"  {name}: first sync after {waited:.1f}s wall; metric {out.get('full_sync_s')}s")
        time.sleep(2.0)
        per_change: list[Json] = []
        sync_times: list[float] = []
        for c in range(changes):
            i = (n // 2 + 37 * c) % n
            before = sync_counts(spec, netns)
            asyncio.run(change_slice(spec, i, generation + c + 1))
            new_ip = endpoint_ip(i, 0, generation + c + 1)
            t1 = time.monotonic()
            wait(synced_past(spec, netns, before[0]), 120, f"{name}'s sync")
            seen = time.monotonic() - t1
            after = sync_counts(spec, netns)
            sync_times.append((after[1] - before[1]) / max(after[0] - before[0], 1))
            per_change.append(
                {
                    "service": f"svc-{i}",
                    "new_endpoint": new_ip,
                    "syncs": after[0] - before[0],
                    "sync_s": round(sync_times[-1], 4),
                    "seen_after_s": round(seen, 3),
                }
            )
            time.sleep(1.5)  # past the 1 s minimum sync period before the next change
        out["changes"] = per_change
        if sync_times:
            out["one_change_sync_s_median"] = round(statistics.median(sync_times), 4)
        last_ip = per_change[-1]["new_endpoint"] if per_change else None
        out["rules"] = chain_stats(netns, mode)
        if mode == "nftables":
            ruleset = nft_ruleset(netns)
            (spec.logs / f"{name}-{n}-nft-ruleset.txt").write_text(ruleset)
            if last_ip is not None:  # pykubelet's `dnat to ip:port`, kube-proxy's dnat map
                spellings = (f"{last_ip}:{ENDPOINT_PORT}", f"{last_ip} . {ENDPOINT_PORT}")
                out["last_change_in_kernel"] = any(s in ruleset for s in spellings)
            out["end"] = proc_stats(agent_pid(agent))
            out["elapsed_s"] = round(time.monotonic() - t0, 1)
            return out
        saved = subprocess.run(
            ["ip", "netns", "exec", netns, "iptables-nft-save"],
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        (spec.logs / f"{name}-{n}-iptables-save.txt").write_text(saved)
        if last_ip is not None:
            needle = f"--to-destination {last_ip}:{ENDPOINT_PORT}"
            out["last_change_in_kernel"] = any(
                needle
                in subprocess.run(
                    ["ip", "netns", "exec", netns, tool, "-t", "nat"],
                    capture_output=True,
                    text=True,
                    timeout=300,
                ).stdout
                for tool in ("iptables-nft-save", "iptables-legacy-save")
            )
        out["end"] = proc_stats(agent_pid(agent))
        out["elapsed_s"] = round(time.monotonic() - t0, 1)
    finally:
        process.stop(daemon)
        process.stop(fwd)
        subprocess.run(["ip", "netns", "del", netns], check=False)
    return out


_SERVICE_IP = re.compile(r"\b10\.96\.\d+\.\d+\b")


def _has_rules(netns: str, n: int, mode: str = "iptables") -> bool:
    """The first sync is complete in the kernel: KUBE-SERVICES holds the n cluster IP jumps
    (in whichever iptables backend the agent chose); in nftables mode, the ruleset names the
    n cluster IPs (in kube-proxy's service-ips map or pykubelet's shards' maps)."""
    if mode == "nftables":
        return len(set(_SERVICE_IP.findall(nft_ruleset(netns)))) >= n
    for tool in ("iptables-nft", "iptables-legacy"):
        r = subprocess.run(
            ["ip", "netns", "exec", netns, tool, "-t", "nat", "-S", "KUBE-SERVICES"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if r.returncode == 0 and r.stdout.count("cluster IP") >= n:
            return True
    return False


# ---- report -------------------------------------------------------------------------------------


def markdown(results: Json) -> str:
    rows = [
        f"Both agents in {results.get('mode', 'iptables')} mode.",
        "",
        "| Services | measure | pykubelet | kube-proxy | py/kube-proxy |",
        "|---|---|---:|---:|---:|",
    ]
    for run in results["runs"]:
        n = run["services"]
        py, go = run["agents"].get("pykubelet", {}), run["agents"].get("kube-proxy", {})
        for label, key in (
            ("full sync (s, metric)", "full_sync_s"),
            ("first sync wall (s)", "first_sync_wall_s"),
            ("one-Service change sync (s, median)", "one_change_sync_s_median"),
        ):
            a, b = py.get(key), go.get(key)
            ratio = f"{a / b:.2f}" if isinstance(a, float | int) and b else "-"
            rows.append(f"| {n} | {label} | {a} | {b} | {ratio} |")
    for m in results["micro"]:
        if m.get("mode") == "nftables":
            full = m["full_build_ms"] + m["full_batch_ms"] + m["full_encode_ms"]
            label = "Python build+batch+encode: full / one change (ms)"
        else:
            full = m["full_build_ms"] + m["full_render_ms"]
            label = "Python build+render: full / one change (ms)"
        rows.append(
            f"| {m['services']} | {label} | {full:.1f} / {m['one_change_total_ms']:.2f} | - | - |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_proxy", description=__doc__)
    p.add_argument(
        "--services",
        type=int,
        nargs="+",
        default=[1000],
        help="Service counts, run in order on one cluster (default 1000)",
    )
    p.add_argument("--changes", type=int, default=5, help="one-Service changes per agent")
    p.add_argument("--agents", default="kube-proxy,pykubelet")
    p.add_argument(
        "--mode",
        choices=("iptables", "nftables"),
        default="iptables",
        help="proxy mode of both agents (default iptables)",
    )
    p.add_argument("--micro-only", action="store_true", help="only the Python micro benchmark")
    p.add_argument("--repeats", type=int, default=5, help="micro benchmark repetitions")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for a first sync")
    p.add_argument("--results", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a background run ignores SIGINT: make SIGTERM unwind too, so the teardown always runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stamp = datetime.datetime.now(datetime.UTC)
    results: Json = {
        "benchmark": "proxy",
        "mode": args.mode,
        "started": stamp.isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "iptables": subprocess.run(
                ["iptables", "-V"], capture_output=True, text=True
            ).stdout.strip(),
        },
        "micro": [],
        "runs": [],
    }
    for n in args.services:
        say(f"micro benchmark at {n} Services")
        bench = micro_nft if args.mode == "nftables" else micro
        results["micro"].append(bench(n, args.repeats))
        say(f"  {results['micro'][-1]}")
    code = 0
    if not args.micro_only:
        if os.geteuid() != 0:
            say("the agent comparison must run as root (netns, iptables)")
            return 2
        code = compare(args, results)
    results["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    args.results.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.mode == "iptables" else f"-{args.mode}"
    path = args.results / f"proxy{suffix}-{stamp:%Y-%m-%dT%H%M}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    say(f"results written to {path}")
    return code


def compare(args: argparse.Namespace, results: Json) -> int:
    binaries = cluster.find_binaries(build=False, say=say)
    agents = [a for a in args.agents.split(",") if a]
    if "kube-proxy" in agents and not binaries.k8s("kube-proxy").exists():
        say("kube-proxy is not built: run `bash cluster/gobuild/build.sh node`")
        return 2
    directory = Path(tempfile.mkdtemp(prefix="pykbench-proxy-"))
    spec = cluster.make_spec(
        directory, binaries, ports=Ports(*free_ports(8)), bridge=f"pkpb{os.getpid() % 10000}"
    )
    spec = dataclasses.replace(spec, service_cidr=SERVICE_CIDR)
    code = 0
    try:
        cluster.up(spec, with_containerd=False, with_nodes=False, say=lambda m: say(f"  {m}"))
        created = 0
        generation = 0
        for n in args.services:
            say(f"creating Services {created}..{n - 1}")
            secs = asyncio.run(create_objects(spec, created, n))
            created = n
            run: Json = {
                "services": n,
                "endpoints_per_service": 2,
                "create_s": round(secs, 1),
                "agents": {},
            }
            results["runs"].append(run)
            for name in agents:
                say(f"{name} at {n} Services")
                try:
                    run["agents"][name] = run_agent(
                        spec, name, n, args.changes, generation, args.timeout, args.mode
                    )
                except (BenchError, subprocess.SubprocessError, OSError) as e:
                    say(f"  {name} failed: {e}")
                    run["agents"][name] = {"error": str(e)}
                    code = 1
                generation += args.changes + 1
    except Exception as e:
        say(f"benchmark failed: {e!r}")
        results["error"] = repr(e)
        code = 1
    finally:
        logs = Path(tempfile.gettempdir()) / f"pykbench-proxy-logs-{os.getpid()}"
        with contextlib.suppress(OSError):
            shutil.copytree(spec.logs, logs, dirs_exist_ok=True)
            say(f"logs copied to {logs}")
        cluster.down(directory, say=lambda m: say(f"  {m}"))
    return code


if __name__ == "__main__":
    sys.exit(main())
