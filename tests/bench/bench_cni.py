"""CNI ADD/DEL latency: pykubelet's plugin (stdlib launcher + the agent's net service) against
Debian's bridge + host-local (+ portmap, as a conflist runs it), exec'd the way a runtime does.

Run as root from the checkout: `python -m tests.bench.bench_cni [--count 30]`. Everything runs in
a throwaway netns "host" (its own bridges and iptables), with one throwaway netns per sandbox;
all are deleted at the end. Prints and writes tests/bench/results/cni-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from net import install

DEBIAN_BIN = Path("/usr/lib/cni")
RESULTS = Path(__file__).parent / "results"


def _netns(name: str, action: str) -> None:
    subprocess.run(["ip", "netns", action, name], check=True, capture_output=True)


def _exec(plugin: Path, env: dict[str, str], conf: dict[str, object]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([str(plugin)], input=json.dumps(conf).encode(), env=env, capture_output=True)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{plugin.name} {env['CNI_COMMAND']}: {r.stdout!r} {r.stderr!r}")
    return took, r.stdout.decode()


def _env(cmd: str, cid: str, netns: str, path: Path) -> dict[str, str]:
    return {
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(path),
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + cid,
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "median_ms": round(statistics.median(xs) * 1000, 2),
        "p90_ms": round(xs[int(0.9 * (len(xs) - 1))] * 1000, 2),
        "mean_ms": round(statistics.mean(xs) * 1000, 2),
    }


def run_pykubelet(work: Path, count: int, tag: str) -> dict[str, list[float]]:
    """Starts the agent's network service (as `pykubelet run` does) and execs our plugin."""
    bin_dir, conf_dir, data = work / "bin", work / "net.d", work / "agent"
    agent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, sys; from pathlib import Path; "
            "from net.daemon import NetworkDaemon; from net.settings import NetworkSettings; "
            "s = NetworkSettings(cni_conf_dir=Path(sys.argv[1]), cni_bin_dir=Path(sys.argv[2]), "
            "bridge=sys.argv[3], cluster_cidr='10.77.0.0/16', data_dir=Path(sys.argv[4]));\n"
            "async def cidr(): return '10.77.1.0/24'\n"
            "asyncio.run(NetworkDaemon(s).run(cidr))",
            str(conf_dir),
            str(bin_dir),
            f"{tag}p",
            str(data),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        conflist = conf_dir / install.CONFLIST_NAME
        deadline = time.monotonic() + 30
        while not conflist.exists():
            if time.monotonic() > deadline or agent.poll() is not None:
                raise RuntimeError("the network service did not write its conflist")
            time.sleep(0.05)
        doc = json.loads(conflist.read_text())
        conf = {"cniVersion": doc["cniVersion"], "name": doc["name"], **doc["plugins"][0]}
        return _cycle(bin_dir / "pykubelet-cni", [conf], bin_dir, count, f"{tag}y")
    finally:
        agent.terminate()
        agent.wait()


def run_debian(work: Path, count: int, tag: str, with_portmap: bool) -> dict[str, list[float]]:
    base = {"cniVersion": "1.0.0", "name": "bench-debian"}
    bridge = {
        **base,
        "type": "bridge",
        "bridge": f"{tag}d",
        "isGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": {"type": "host-local", "subnet": "10.77.2.0/24", "dataDir": str(work / "ipam")},
    }
    confs: list[dict[str, object]] = [bridge]
    if with_portmap:
        confs.append(
            {
                **base,
                "type": "portmap",
                "capabilities": {"portMappings": True},
                "runtimeConfig": {"portMappings": []},
            }
        )
    return _cycle(
        DEBIAN_BIN / "bridge", confs, DEBIAN_BIN, count, f"{tag}{'m' if with_portmap else 'b'}"
    )


def _cycle(
    first: Path, confs: list[dict[str, object]], path: Path, count: int, tag: str
) -> dict[str, list[float]]:
    """`count` sandboxes: ADD every plugin of the chain in order (prevResult passed on, as a
    runtime does), then DEL in reverse; the time of one ADD/DEL is the chain's total."""
    adds, dels = [], []
    for i in range(count):
        ns = f"{tag}{i}"
        _netns(ns, "add")
        try:
            cid = f"bench{tag}{i:04d}"
            total, prev = 0.0, None
            for conf in confs:
                c = dict(conf)
                if prev is not None:
                    c["prevResult"] = prev
                plugin = first if conf is confs[0] else path / str(conf["type"])
                took, out = _exec(plugin, _env("ADD", cid, f"/run/netns/{ns}", path), c)
                total += took
                prev = json.loads(out)
            adds.append(total)
            total = 0.0
            for conf in reversed(confs):
                plugin = first if conf is confs[0] else path / str(conf["type"])
                took, _ = _exec(plugin, _env("DEL", cid, f"/run/netns/{ns}", path), conf)
                total += took
            dels.append(total)
        finally:
            _netns(ns, "delete")
    return {"add": adds, "del": dels}


def inside(count: int, tag: str) -> dict[str, object]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory(prefix="bench-cni-") as tmp:
        work = Path(tmp)
        runs = {
            "pykubelet": run_pykubelet(work / "py", count, tag),
            "debian-bridge": run_debian(work / "deb", count, tag, with_portmap=False),
            "debian-bridge+portmap": run_debian(work / "debpm", count, tag, with_portmap=True),
        }
    out: dict[str, object] = {
        name: {op: _stats(v) for op, v in r.items()} for name, r in runs.items()
    }
    py = runs["pykubelet"]
    for other in ("debian-bridge", "debian-bridge+portmap"):
        o = runs[other]
        out[f"ratio vs {other}"] = {
            op: round(statistics.median(py[op]) / statistics.median(o[op]), 2) for op in py
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tag", default=f"pkb{os.getpid() % 100000}")
    args = p.parse_args()
    if args.inside:
        print(json.dumps(inside(args.count, args.tag)))
        return 0
    host = f"{args.tag}h"
    _netns(host, "add")
    try:
        r = subprocess.run(
            [
                "nsenter",
                f"--net=/run/netns/{host}",
                sys.executable,
                "-m",
                "tests.bench.bench_cni",
                "--inside",
                "--count",
                str(args.count),
                "--tag",
                args.tag,
            ],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        _netns(host, "delete")
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return 1
    result = {
        "date": datetime.date.today().isoformat(),
        "count": args.count,
        **json.loads(r.stdout.splitlines()[-1]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cni-{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
