"""`make conformance`: the upstream [NodeConformance] e2e tests against pykubelet on a local
cluster of its own; writes docs/conformance.md and keeps the JUnit XML. Orchestration only.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from cluster import up as cluster
from cluster.spec import DEFAULT_CACHE, ClusterSpec, Ports, free_ports
from tests.conformance import e2e, e2e_images, hostfacts, junit, report
from tests.conformance.supervisor import Supervisor

NODE = "conformance-node"
TOP = Path(__file__).resolve().parents[2]
DOC = TOP / "docs" / "conformance.md"
WORK_ROOT = Path("/var/lib/pykubelet")
RUN_JSON = "run.json"


def say(msg: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
    print(f"[conformance {stamp}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.conformance", description=__doc__)
    p.add_argument(
        "--procs",
        type=int,
        default=4,
        help="parallel ginkgo workers for the non-serial pass (1: run e2e.test directly)",
    )
    p.add_argument("--timeout", type=float, default=120, help="minutes for the parallel pass")
    p.add_argument("--serial-timeout", type=float, default=20, help="minutes for the serial pass")
    p.add_argument("--focus", default=e2e.FOCUS, help="ginkgo focus of the parallel pass")
    p.add_argument("--skip", default=e2e.SKIP, help="ginkgo skip of the parallel pass")
    p.add_argument("--no-serial", action="store_true", help="skip the [Serial] pass")
    p.add_argument("--out", type=Path, default=DOC, help="where the Markdown report goes")
    p.add_argument(
        "--render-from",
        type=Path,
        default=None,
        metavar="ARTIFACTS",
        help="do not run: render the report again from a run's kept JUnit XML and run.json",
    )
    p.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="where JUnit XML and logs are kept (default ~/.cache/pykubelet/conformance/<time>)",
    )
    return p.parse_args(argv)


def pick_cluster_cidr(ip_text: str, *, first: int = 200, last: int = 254) -> str:
    """A 10.X.0.0/16 no route or address of this host mentions (`ip -4 route; ip -4 addr`)."""
    used = {int(m) for m in re.findall(r"\b10\.(\d{1,3})\.\d{1,3}\.\d{1,3}", ip_text)}
    for x in range(first, last + 1):
        if x not in used:
            return f"10.{x}.0.0/16"
    raise RuntimeError(f"no free 10.X.0.0/16 with X in {first}..{last} on this host")


def _ip_text() -> str:
    out = []
    for argv in (["ip", "-4", "-o", "route"], ["ip", "-4", "-o", "addr"]):
        out.append(subprocess.run(argv, capture_output=True, text=True, check=False).stdout)
    return "\n".join(out)


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C so `finally` blocks tear the cluster down."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def ensure_binaries() -> Path:
    """Build (or reuse) the control plane, e2e.test, agnhost and ginkgo; their directory."""
    r = subprocess.run(["bash", str(cluster.BUILD_SCRIPT), "server", "etcd", "crictl", "e2e"])
    if r.returncode != 0:
        raise RuntimeError(f"{cluster.BUILD_SCRIPT} failed (exit {r.returncode}); see above")
    k8s = cluster.find_binaries(build=False, say=say).kubernetes
    missing = [n for n in ("e2e.test", "agnhost", "ginkgo", "kubectl") if not (k8s / n).exists()]
    if missing:
        raise RuntimeError(f"missing {missing} in {k8s} after the build")
    return k8s


def k8s_source_dir() -> Path:
    """Where the Go module cache holds the k8s.io/kubernetes module the binaries came from."""
    r = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"],
        cwd=cluster.BUILD_SCRIPT.parent / "k8s",
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"go list -m k8s.io/kubernetes failed: {r.stderr.strip()[-300:]}")
    return Path(r.stdout.strip())


def source_state() -> str:
    """Which pykubelet ran: the commit, and uncommitted files of the agent's packages."""

    def git(*a: str) -> str:
        r = subprocess.run(["git", *a], cwd=TOP, capture_output=True, text=True, check=False)
        return r.stdout.strip()

    dirty = git("status", "--short", "--", "kubelet", "net", "cri").splitlines()
    state = f"pykubelet at commit {git('rev-parse', '--short', 'HEAD')}"
    if dirty:
        state += f" plus {len(dirty)} uncommitted files in kubelet/, net/, cri/"
    return state


def kubelet_port(fallback: int) -> int:
    """10250 when nothing listens there: the e2e framework's failure dumps ask the node's
    :10250 through the apiserver whatever port the node reports. Else `fallback`."""
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", 10250))
        except OSError:
            return fallback
    return 10250


def make_spec(directory: Path) -> ClusterSpec:
    pid = os.getpid()
    api, etcd, peer, cm, sched, kubelet = free_ports(6)
    return cluster.make_spec(
        directory,
        cluster.find_binaries(build=False, say=say),
        ports=Ports(api, etcd, peer, cm, sched, kubelet=kubelet_port(kubelet)),
        node_names=(NODE,),
        bridge=f"pykc{pid % 100000}",
        cluster_cidr=pick_cluster_cidr(_ip_text()),
    )


def keep_logs(spec: ClusterSpec, artifacts: Path) -> None:
    dest = artifacts / "logs"
    if spec.logs.is_dir():
        shutil.copytree(spec.logs, dest, dirs_exist_ok=True)


def load_results(artifacts: Path, focus: str) -> list[junit.SpecResult]:
    """Every pass's JUnit (the ginkgo CLI's, else e2e.test's own junit_01.xml), merged."""
    files = sorted(artifacts.glob("junit_parallel.xml")) + sorted(
        artifacts.glob("junit_serial.xml")
    )
    files = files or sorted(artifacts.glob("junit*.xml"))
    runs = []
    for f in files:
        try:
            runs.append(junit.matching(junit.parse(f.read_text(), source=str(f)), focus))
        except (OSError, junit.JUnitError) as e:
            say(f"cannot read {f}: {e}")
    return junit.merge(*runs)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_from is not None:
        return write_report(args.render_from, args.out)
    if os.geteuid() != 0:
        say("must run as root (starts containerd, the node agent and pod networking)")
        return 2
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    artifacts = args.artifacts or DEFAULT_CACHE / "conformance" / stamp
    artifacts.mkdir(parents=True, exist_ok=True)
    k8s = ensure_binaries()
    e2e_test = k8s / "e2e.test"
    facts = hostfacts.probe()
    say(f"host facts: {facts}")
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    directory = WORK_ROOT / f"conformance-{os.getpid()}"
    spec = make_spec(directory)
    say(f"cluster in {directory}: apiserver :{spec.ports.apiserver}, pods {spec.cluster_cidr}")
    flags = e2e.e2e_flags(
        kubeconfig=spec.admin_kubeconfig, kubectl=k8s / "kubectl", report_dir=artifacts
    )
    passes = [
        e2e.parallel_pass(
            ginkgo=k8s / "ginkgo",
            e2e_test=e2e_test,
            procs=args.procs,
            timeout_s=args.timeout * 60,
            flags=flags,
            out_dir=artifacts,
            focus=args.focus,
            skip=args.skip,
        )
    ]
    if not args.no_serial:
        passes.append(
            e2e.serial_pass(
                e2e_test=e2e_test,
                timeout_s=args.serial_timeout * 60,
                flags=flags,
                out_dir=artifacts,
            )
        )
    pass_lines: list[str] = []
    images: Sequence[str] = ()
    notes: list[str] = [f"Node agent: {source_state()}."]
    sup: Supervisor | None = None
    agent = cluster.agent_daemon(spec, NODE)
    with interrupts_as_exceptions():
        try:
            cluster.up(spec, with_nodes=False, say=say)
            wanted = e2e_images.prepare(
                e2e_test=e2e_test,
                agnhost=k8s / "agnhost",
                k8s_source=k8s_source_dir(),
                cache_dir=DEFAULT_CACHE / "images",
                address=spec.containerd_socket,
            )
            images = list(wanted)
            say(f"e2e images imported: {', '.join(images)}")
            cluster.start_node(spec, NODE, say=say)
            sup = Supervisor(
                alive=agent.pid,
                restart=lambda: cluster.start_node(spec, NODE, say=say),
                log_tail=agent.tail,
                say=say,
            )
            sup.start()
            for p in passes:
                say(f"{p.name} pass: {' '.join(p.argv)}")
                say(f"  output: {p.log}")
                out = e2e.run_pass(p)
                line = (
                    f"{p.name}: exit {out.exit_code} after {report.duration(out.seconds)}"
                    + (" (killed by the runner's watchdog)" if out.killed_by_watchdog else "")
                    + f"; log `{p.log}`"
                )
                pass_lines.append(line)
                say(line)
        except KeyboardInterrupt:
            notes.append("The run was interrupted; results are partial.")
            say("interrupted; tearing down")
        except Exception as e:
            notes.append(f"The run stopped early: {type(e).__name__}: {e}")
            say(f"run failed: {e}")
        finally:
            if sup is not None:
                sup.stop()
            keep_logs(spec, artifacts)
            cluster.down(directory, say=say)
    info = report.RunInfo(
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        wall_seconds=time.monotonic() - t0,
        k8s_version=k8s.name.removeprefix("kubernetes-"),
        command=[
            "e2e.test --provider=local",
            f"--ginkgo.focus='{args.focus}'",
            f"--ginkgo.skip='{args.skip}'",
            f"(ginkgo --procs={args.procs}); then a serial pass for [Serial]",
        ],
        passes=pass_lines,
        images=images,
        facts=facts,
        crashes=sup.crashes if sup is not None else (),
        notes=[*notes, f"JUnit XML and logs: `{artifacts}`"],
        focus=args.focus,
    )
    (artifacts / RUN_JSON).write_text(report.info_to_json(info))
    return write_report(artifacts, args.out)


def write_report(artifacts: Path, out: Path) -> int:
    """Render `out` from the JUnit XML and run.json kept in `artifacts`."""
    info = report.info_from_json((artifacts / RUN_JSON).read_text())
    results = load_results(artifacts, info.focus)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(results, info))
    passed = sum(r.status == junit.PASSED for r in results)
    ran = sum(r.status in (junit.PASSED, junit.FAILED) for r in results)
    minutes = info.wall_seconds / 60
    say(f"{passed}/{ran} passed; report {out}; artifacts {artifacts}; {minutes:.1f} min")
    return 0 if results else 1
