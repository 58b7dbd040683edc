"""IPVS mode's backend against the real kernel, as far as this one goes: IPVS itself is missing
here (its netlink side is a recorder), but IPVS mode's ipsets and fixed iptables rules are real,
and --cleanup removes them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from net.proxy import model
from net.proxy.history import History
from net.proxy.iptables import executor as iptables_exec
from net.proxy.iptables.executor import Executor
from net.proxy.metrics import ProxyMetrics
from net.proxy.proxier import Proxier
from tests.unit.net.proxy.objects import endpoint_slice, service, sync

CONFIG = model.ProxyConfig(node_name="n1", node_ips=("10.9.0.1",), cluster_cidr="10.88.0.0/16")


@pytest.fixture
def netns(root_required: None) -> Iterator[str]:
    name = f"pkipvs{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def _runner(netns: str) -> Any:
    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", *cmd], **kw)

    return run


def _save(executor: Executor) -> str:
    return executor.save(("nat", "filter"))


def test_ipvs_mode_ipsets_and_iptables_land_in_the_kernel(netns: str) -> None:
    from net.proxy.ipvs.backend import IpvsBackend, IpvsProgrammer
    from net.proxy.ipvs.plan import IpvsState, Op

    class Recorder:
        def __init__(self) -> None:
            self.ops: list[str] = []

        def ensure_dummy(self) -> None:
            pass

        def current(self) -> IpvsState:
            return IpvsState({}, frozenset())

        def apply(self, op: Op) -> None:
            self.ops.append(op.text())

        def close(self) -> None:
            pass

    run = _runner(netns)
    executor = Executor(iptables_exec.detect(run), run=run)
    recorder = Recorder()
    p = Proxier(
        CONFIG,
        IpvsBackend(IpvsProgrammer(recorder, executor, run=run)),
        metrics=ProxyMetrics(CollectorRegistry()),
        history=History(),
    )
    p.on_service(sync(service("web", "10.0.0.10", node_port=30080)))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    try:
        record = p.sync()
        assert not record.error, record.error
        sets = run(["ipset", "list", "KUBE-CLUSTER-IP"], capture_output=True, text=True).stdout
        assert "10.0.0.10,tcp:80" in sets
        ports = run(["ipset", "list", "KUBE-NODE-PORT-TCP"], capture_output=True, text=True)
        assert "30080" in ports.stdout
        assert "--match-set KUBE-CLUSTER-IP dst,dst" in _save(executor)
        assert "add-service tcp 10.0.0.10:80 rr" in recorder.ops
    finally:
        from net.proxy.cleanup import cleanup

        assert cleanup(executor, run) >= 4
        assert "KUBE-" not in _save(executor)
        left = run(["ipset", "list", "-n"], capture_output=True, text=True).stdout
        assert left.strip() == ""
