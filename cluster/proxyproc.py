"""`pykubelet proxy` as a process of a local cluster: its command line, its start (optionally
inside a node's netns) and its readiness. Uses process.py; knows nothing of rules.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from cluster import process
from cluster.nsforward import call_in_netns
from cluster.spec import ClusterSpec

ROOT_NETNS_MARK = "proxy-rootns"
"""A file in the run dir saying a proxy ran in the root netns, so `down` removes KUBE-* chains
there (never otherwise: other sessions' proxies may own them)."""
ROOT_NETNS_LOCK = Path("/run/pykubelet/root-netns-proxy.lock")
"""flock held by the one `pykubelet proxy` of the machine's root netns (inherited by the proxy
process, so it lasts exactly as long as that proxy): two proxies there would rewrite each
other's KUBE-SERVICES, and one's cleanup would remove the other's rules."""


@contextlib.contextmanager
def root_netns_lock(lock: Path | None = None) -> Iterator[int]:
    """The root netns's proxy lock (ROOT_NETNS_LOCK) as an open fd (closed on exit);
    ComponentFailed naming the holder when another proxy has it."""
    lock = lock or ROOT_NETNS_LOCK
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            raise process.ComponentFailed(
                f"another pykubelet proxy runs in this host's root netns ({holder}): one proxy "
                "per netns; run `pykubelet down` for that cluster first, or use --nodes N"
            ) from None
        yield fd
    finally:
        os.close(fd)


def proxy_daemon(spec: ClusterSpec, node: str) -> process.Daemon:
    return process.Daemon(name=f"pykubelet-proxy-{node}", run_dir=spec.run, log_dir=spec.logs)


def proxy_command(
    spec: ClusterSpec,
    node: str,
    *,
    node_routes: str = "none",
    mode: str = "iptables",
    extra_args: Sequence[str] = (),
    localhost_nodeports: bool = True,
) -> list[str]:
    """`pykubelet proxy` for `node` with the cluster's kube-proxy kubeconfig.
    `localhost_nodeports=False` keeps it from setting route_localnet (the root netns is the
    machine's, shared with other sessions)."""
    p = spec.ports
    localhost = [] if localhost_nodeports else ["--iptables-localhost-nodeports=false"]
    return [
        sys.executable,
        "-m",
        "pykubelet.cli",
        "proxy",
        f"--kubeconfig={spec.kubeconfig('kube-proxy')}",
        f"--hostname-override={node}",
        f"--cluster-cidr={spec.cluster_cidr}",
        f"--proxy-mode={mode}",
        f"--healthz-bind-address=0.0.0.0:{p.proxy_healthz}",
        f"--metrics-bind-address=127.0.0.1:{p.proxy_metrics}",
        f"--node-routes={node_routes}",
        *localhost,
        *extra_args,
    ]


def get_in_netns(netns: str | None, url: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    """HTTP GET from inside the named netns (from a short-lived thread that enters it)."""

    def get() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    return call_in_netns(f"/run/netns/{netns}" if netns is not None else None, get)


def healthz(spec: ClusterSpec, netns: str | None) -> tuple[int, dict[str, object]]:
    status, body = get_in_netns(netns, f"http://127.0.0.1:{spec.ports.proxy_healthz}/healthz")
    return status, json.loads(body)


def start_proxy(
    spec: ClusterSpec,
    node: str,
    *,
    netns: str | None = None,
    node_routes: str = "none",
    mode: str = "iptables",
    extra_args: Sequence[str] = (),
    wait: bool = True,
    timeout: float = 30.0,
    say: Callable[[str], None] | None = None,
) -> process.Daemon:
    """Start the proxy of `node` (inside the named netns `netns`, else in this one) and, with
    `wait`, return once its first sync is applied (/healthz 200). Idempotent when running.
    In a netns the apiserver port must already be forwarded into it (nsforward)."""
    d = proxy_daemon(spec, node)
    command = proxy_command(
        spec,
        node,
        node_routes=node_routes,
        mode=mode,
        extra_args=extra_args,
        localhost_nodeports=netns is not None,
    )
    if netns is not None:
        process.start(d, command, netns=netns)
    elif d.pid() is None:
        with root_netns_lock() as fd:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"cluster {spec.directory}, node {node}\n".encode(), 0)
            spec.run.mkdir(parents=True, exist_ok=True)
            (spec.run / ROOT_NETNS_MARK).touch()
            process.start(d, command, pass_fds=(fd,))
    if wait:
        waited = process.wait_ready(d, lambda: healthz(spec, netns)[0] == 200, timeout=timeout)
        if say is not None:
            say(f"proxy of {node} synced ({waited:.1f}s)")
    return d


def stop_proxy(spec: ClusterSpec, node: str) -> bool:
    """Stop the proxy; its rules stay (as upstream: a restart must not drop traffic)."""
    return process.stop(proxy_daemon(spec, node))


def ran_in_root_netns(run_dir: Path) -> bool:
    return (run_dir / ROOT_NETNS_MARK).exists()


def cleanup_root_netns(spec: ClusterSpec) -> str | None:
    """After this cluster's root-netns proxy stopped: `--cleanup` there, unless no proxy of this
    cluster ran there (None) or another cluster's proxy now owns the rules (ComponentFailed)."""
    if not ran_in_root_netns(spec.run):
        return None
    with root_netns_lock():
        report = remove_rules()
    (spec.run / ROOT_NETNS_MARK).unlink(missing_ok=True)
    return report


def remove_rules(netns: str | None = None) -> str:
    """`pykubelet proxy --cleanup` (in the named netns): the proxy's chains and jumps go.
    Returns its one-line report; raises ComponentFailed when it fails."""
    cmd = [sys.executable, "-m", "pykubelet.cli", "proxy", "--cleanup"]
    if netns is not None:
        cmd = ["nsenter", f"--net=/run/netns/{netns}", "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise process.ComponentFailed(f"pykubelet proxy --cleanup: {r.stderr.strip()}")
    return r.stdout.strip()
