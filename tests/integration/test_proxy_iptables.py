"""iptables mode's own checks against the real iptables-restore, inside a throwaway netns: partial
syncs leave what a full sync makes, builtin jumps are not doubled, a bad batch names its line,
a failed batch leaves no table half applied, --cleanup, localhost NodePorts. What every mode
does alike is in test_proxy_backends.py."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from net.proxy import model
from net.proxy.conntrack import Conntrack
from net.proxy.history import History
from net.proxy.iptables import executor as iptables_exec
from net.proxy.iptables.backend import IptablesBackend
from net.proxy.iptables.executor import Executor, RestoreError
from net.proxy.metrics import ProxyMetrics
from net.proxy.proxier import Proxier
from tests.unit.net.proxy.objects import endpoint_slice, modified, service, sync

ROOT = Path(__file__).resolve().parents[2]
CONFIG = model.ProxyConfig(node_name="n1", node_ips=("10.9.0.1",), cluster_cidr="10.88.0.0/16")


@pytest.fixture
def netns(root_required: None) -> Iterator[str]:
    name = f"pkipt{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def _runner(netns: str) -> Any:
    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", *cmd], **kw)

    return run


def _backend(netns: str) -> IptablesBackend:
    run = _runner(netns)
    return IptablesBackend(Executor(iptables_exec.detect(run), run=run))


def _proxier(netns: str) -> Proxier:
    run = _runner(netns)
    return Proxier(
        CONFIG,
        _backend(netns),
        metrics=ProxyMetrics(CollectorRegistry()),
        history=History(),
        conntrack_tool=Conntrack(run=run),
    )


def _save(netns: str) -> str:
    return _backend(netns).executor.save(("nat", "filter"))


def test_partial_syncs_leave_what_a_full_sync_makes(netns: str) -> None:
    p = _proxier(netns)
    p.on_service(sync(service("web", "10.0.0.10"), service("dns", "10.0.0.53", 53, proto="UDP")))
    p.on_slice(
        sync(
            endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.3"]),
            endpoint_slice("dns-1", "dns", ["10.88.1.4"], 53, proto="UDP"),
        )
    )
    first = p.sync()
    assert first.full and not first.error, first.error
    saved = _save(netns)
    assert (
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in saved
    )
    assert saved.count("--to-destination 10.88.1.") == 3
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    second = p.sync()
    assert not second.full and not second.error, second.error
    saved = _save(netns)
    assert "10.88.1.3" not in saved and "10.88.1.2:8080" in saved
    # What the kernel holds equals a fresh full render of the same state.
    fresh = _proxier(netns)
    fresh.on_service(
        sync(service("web", "10.0.0.10"), service("dns", "10.0.0.53", 53, proto="UDP"))
    )
    fresh.on_slice(
        sync(
            endpoint_slice("web-1", "web", ["10.88.1.2"]),
            endpoint_slice("dns-1", "dns", ["10.88.1.4"], 53, proto="UDP"),
        )
    )
    assert not fresh.sync().error
    assert _rules(_save(netns)) == _rules(saved)


def _rules(save: str) -> list[str]:
    return sorted(ln for ln in save.splitlines() if ln.startswith(("-A", ":KUBE")))


def test_a_restarted_proxy_does_not_add_the_builtin_jumps_again(netns: str) -> None:
    p = _proxier(netns)
    p.on_service(sync(service("web", "10.0.0.10")))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    assert not p.sync().error
    restarted = _proxier(netns)
    restarted.on_service(sync(service("other", "10.0.0.12")))
    restarted.on_slice(sync(endpoint_slice("other-1", "other", ["10.88.1.9"])))
    record = restarted.sync()
    assert record.full and not record.error
    # its full sync found the builtin jumps in the kernel and did not add them again
    jumps = [ln for ln in _save(netns).splitlines() if ln.startswith("-A PREROUTING")]
    assert len([j for j in jumps if j.endswith("-j KUBE-SERVICES")]) == 1, jumps


def test_bad_batch_changes_nothing_and_names_its_line(netns: str) -> None:
    backend = _backend(netns)
    p = Proxier(CONFIG, backend, metrics=ProxyMetrics(CollectorRegistry()), history=History())
    p.on_service(sync(service("web", "10.0.0.10")))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    assert not p.sync().error
    before = _save(netns)
    bad = "*nat\n:KUBE-SVC-TEST - [0:0]\n-A KUBE-SVC-TEST -j KUBE-NO-SUCH-CHAIN\nCOMMIT\n"
    with pytest.raises(RestoreError) as info:
        backend.executor.restore(bad)
    assert info.value.line in (3, 4)
    assert _rules(_save(netns)) == _rules(before)


def test_cleanup_removes_every_rule_and_chain_of_ours(netns: str) -> None:
    from cluster import proxyproc

    subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", "iptables", "-t", "nat", "-N", "OTHER"],
        check=True,
    )
    p = _proxier(netns)
    p.on_service(sync(service("web", "10.0.0.10", node_port=30080)))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    assert not p.sync().error
    assert "KUBE-" in _save(netns)
    report = proxyproc.remove_rules(netns)
    assert report.startswith("removed ") and "chains" in report
    saved = _save(netns)
    assert "KUBE-" not in saved and ":OTHER" in saved
    assert proxyproc.remove_rules(netns) == f"removed 0 chains ({_backend(netns).traits.name})"


def test_failed_batch_leaves_no_table_half_applied(netns: str) -> None:
    """iptables-restore commits table by table (both backends): when nat fails after filter
    went in, the proxier puts filter back, so the kernel holds what it held before."""
    backend = _backend(netns)
    p = Proxier(CONFIG, backend, metrics=ProxyMetrics(CollectorRegistry()), history=History())
    p.on_service(sync(service("web", "10.0.0.10")))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    assert not p.sync().error
    before = _rules(_save(netns))
    real_run = backend.executor._run

    def sabotage(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        text = kw.get("input") or ""
        if "*filter" in text and "*nat" in text:  # break the nat part only
            head, _, tail = text.rpartition("COMMIT")
            kw["input"] = head + "-A KUBE-SERVICES -j KUBE-NO-SUCH-CHAIN\nCOMMIT" + tail
        return real_run(cmd, **kw)

    backend.executor._run = sabotage
    p.on_slice(modified(endpoint_slice("web-1", "web", [])))  # filter REJECT + nat changes
    record = p.sync()
    assert record.error
    assert _rules(_save(netns)) == before
    backend.executor._run = real_run
    retry = p.sync()
    assert retry.full and not retry.error
    assert "default/web:p has no endpoints" in _save(netns)


def test_localhost_nodeport_reaches_an_endpoint_on_another_host(netns: str) -> None:
    """--iptables-localhost-nodeports (upstream's default): 127.0.0.1:NODEPORT is DNATed to
    an endpoint behind a veth, which needs route_localnet=1 (set as the daemon does) and the
    masquerade of the EXT chain; KUBE-FIREWALL is in place."""
    pod = f"{netns}p"
    host_if, pod_if = f"pk{os.getpid() % 100000}h", f"pk{os.getpid() % 100000}p"
    ns = ["ip", "netns", "exec", netns]
    pns = ["ip", "netns", "exec", pod]
    subprocess.run(["ip", "netns", "add", pod], check=True)
    server: subprocess.Popen[bytes] | None = None
    try:
        for cmd in (
            [*ns, "ip", "link", "set", "lo", "up"],
            [*ns, "ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if],
            [*ns, "ip", "link", "set", pod_if, "netns", pod],
            [*ns, "ip", "addr", "add", "10.9.0.1/24", "dev", host_if],
            [*ns, "ip", "link", "set", host_if, "up"],
            [*pns, "ip", "addr", "add", "10.9.0.2/24", "dev", pod_if],
            [*pns, "ip", "link", "set", pod_if, "up"],
            [*pns, "ip", "link", "set", "lo", "up"],
        ):
            subprocess.run(cmd, check=True)
        serve = (
            "import socket\ns=socket.create_server(('10.9.0.2',8080))\nprint('up',flush=True)\n"
            "while True:\n c,_=s.accept(); c.sendall(b'hello from the pod'); c.close()\n"
        )
        server = subprocess.Popen([*pns, sys.executable, "-c", serve], stdout=subprocess.PIPE)
        assert server.stdout is not None and server.stdout.readline() == b"up\n"
        run = _runner(netns)
        p = Proxier(
            dataclasses.replace(CONFIG, localhost_nodeports=True),
            IptablesBackend(Executor(iptables_exec.detect(run), run=run)),
            metrics=ProxyMetrics(CollectorRegistry()),
            history=History(),
        )
        p.on_service(sync(service("web", "10.0.0.10", node_port=30080, type="NodePort")))
        p.on_slice(sync(endpoint_slice("web-1", "web", ["10.9.0.2"])))
        assert not p.sync().error
        saved = _save(netns)
        assert "-A INPUT -j KUBE-FIREWALL" in saved and "-A OUTPUT -j KUBE-FIREWALL" in saved
        assert "block incoming localnet connections" in saved
        enable = "from net.proxy.host import ensure_route_localnet as e; assert e()"
        subprocess.run([*ns, sys.executable, "-c", enable], check=True, cwd=ROOT)
        fetch = (
            "import socket\nc=socket.create_connection(('127.0.0.1',30080),timeout=3)\n"
            "print(c.recv(100).decode())\n"
        )
        got = subprocess.run(
            [*ns, sys.executable, "-c", fetch], capture_output=True, text=True, timeout=20
        )
        assert got.stdout.strip() == "hello from the pod", got.stderr
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "delete", pod], check=False)
