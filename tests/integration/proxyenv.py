"""The proxy end-to-end tests' world, shared by every proxy mode's module: a netns node running
`pykubelet proxy`, a backend host with one TCP+UDP echo process per backend IP, a client host."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from cluster import process, proxyproc
from cluster import up as cluster
from cluster.nsforward import forward_command
from cluster.spec import ClusterSpec

from .netns_hosts import Host, hosts
from .podutil import new_namespace

BACKEND_PORT = 8080

BACKEND_SCRIPT = r"""
import socket, sys, threading
def tcp(ip, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port)); s.listen(256)
    while True:
        c, peer = s.accept()
        try:
            c.settimeout(2); c.recv(1024)
            c.sendall(f"HTTP/1.0 200 OK\r\n\r\n{ip} {peer[0]}".encode())
        except OSError: pass
        finally: c.close()
def udp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, port))
    while True:
        data, peer = s.recvfrom(1024); s.sendto(f"{ip} {peer[0]}".encode(), peer)
port = int(sys.argv[1])
for ip in sys.argv[2:]:
    threading.Thread(target=tcp, args=(ip, port), daemon=True).start()
    threading.Thread(target=udp, args=(ip, port), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

E = TypeVar("E")
MakeEnv = Callable[[ClusterSpec, str, Host, Host, Host], E]
"""(spec, test namespace, node, backend host, client) -> the module's Env."""


@contextmanager
def proxy_env(
    spec: ClusterSpec,
    make: MakeEnv[E],
    *,
    node_name: str,
    subnet: str,
    backends: Sequence[str],
    routed: Sequence[str] = (),
    tag: str,
    mode: str = "iptables",
) -> Iterator[E]:
    """Hosts at subnet.1 (node), .2 (backends, which also answer on `backends`), .3 (client,
    reaching `routed` addresses via the node); the proxy in `mode` on the node; a fresh test
    namespace. Everything goes on exit, even on error."""
    fwd = process.Daemon(f"nsforward-{node_name}", spec.run, spec.logs)
    backend_proc: subprocess.Popen[str] | None = None
    ns = ""
    with hosts(3, subnet=subnet, prefix=tag) as (node, backend_host, client):
        try:
            node.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            node.run("sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0")
            node.run("sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=0")
            node.run("ip", "route", "add", "default", "dev", "eth0")
            for ip in routed:
                client.run("ip", "route", "add", f"{ip}/32", "via", node.address)
            for ip in backends:
                backend_host.run("ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            # As with pods behind a node: replies to the client go back through the node.
            backend_host.run("ip", "route", "add", f"{client.address}/32", "via", node.address)
            backend_proc = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/run/netns/{backend_host.netns}",
                    "--",
                    sys.executable,
                    "-c",
                    BACKEND_SCRIPT,
                    str(BACKEND_PORT),
                    *backends,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert backend_proc.stdout is not None
            assert backend_proc.stdout.readline().strip() == "ready"
            process.start(fwd, forward_command(f"/run/netns/{node.netns}", [spec.ports.apiserver]))
            start_proxy(spec, node_name, node, mode)
            ns = new_namespace(spec)
            yield make(spec, ns, node, backend_host, client)
        finally:
            if ns:
                cluster.api(spec, f"/api/v1/namespaces/{ns}", method="DELETE")
            proxyproc.stop_proxy(spec, node_name)
            process.stop(fwd)
            if backend_proc is not None:
                backend_proc.kill()
                backend_proc.wait()


def start_proxy(spec: ClusterSpec, node_name: str, node: Host, mode: str = "iptables") -> None:
    """(Re)start the node's proxy as the environment runs it."""
    proxyproc.start_proxy(
        spec,
        node_name,
        netns=node.netns,
        node_routes="host-gw",
        mode=mode,
        extra_args=["--v=4"],
    )
