"""IPVS mode's backend under the sync engine, with a recording netlink side: what a full and a
partial sync program, ipsets created with their ranges, the fixed iptables rules, op failures
owing a full sync, and the one-line refusal on a kernel without IPVS."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from net.proxy import model
from net.proxy.backend import Unsupported
from net.proxy.history import History
from net.proxy.iptables.executor import NFT, Executor
from net.proxy.ipvs.backend import (
    SYSCTLS,
    IpvsBackend,
    IpvsProgrammer,
    check_kernel,
    ensure_sysctls,
)
from net.proxy.ipvs.plan import IpvsState, Op
from net.proxy.metrics import ProxyMetrics
from net.proxy.proxier import Proxier

from ..objects import Kernel, endpoint_slice, modified, service, sync

CONFIG = model.ProxyConfig(node_name="n1", node_ips=("192.168.1.10",), cluster_cidr="10.88.0.0/16")


class FakeIpvs:
    def __init__(self) -> None:
        self.ops: list[str] = []
        self.dummy = False
        self.fail: str | None = None
        self.closed = 0

    def ensure_dummy(self) -> None:
        self.dummy = True

    def current(self) -> IpvsState:
        return IpvsState({}, frozenset())

    def apply(self, op: Op) -> None:
        if self.fail and self.fail in op.text():
            raise OSError(17, "File exists")
        self.ops.append(op.text())

    def close(self) -> None:
        self.closed += 1


def _proxier(kernel: Kernel, ipvs: FakeIpvs) -> tuple[Proxier, IpvsBackend]:
    backend = IpvsBackend(IpvsProgrammer(ipvs, Executor(NFT, run=kernel), run=kernel))
    engine = Proxier(CONFIG, backend, metrics=ProxyMetrics(CollectorRegistry()), history=History())
    return engine, backend


def _ipset_inputs(kernel: Kernel) -> list[str]:
    return [r for r in kernel.restores if r.startswith(("create", "add", "del"))]


def test_full_then_partial_sync() -> None:
    kernel, ipvs = Kernel(), FakeIpvs()
    p, _ = _proxier(kernel, ipvs)
    p.on_service(sync(service("web", "10.0.0.10", node_port=30080)))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.3"])))
    first = p.sync()
    assert first.full and not first.error, first.error
    assert ipvs.dummy
    assert "add-address 10.0.0.10/32 dev kube-ipvs0" in ipvs.ops
    assert "add-service tcp 10.0.0.10:80 rr" in ipvs.ops
    assert "add-dest tcp 10.0.0.10:80 -> 10.88.1.3:8080 w1" in ipvs.ops
    (ipsets,) = _ipset_inputs(kernel)
    assert "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535" in ipsets
    assert "add KUBE-CLUSTER-IP 10.0.0.10,tcp:80" in ipsets
    nat = next(r for r in kernel.restores if r.startswith("*"))
    assert "--match-set KUBE-CLUSTER-IP dst,dst" in nat
    checks = [c for c in kernel.commands if c[0] == "iptables-nft" and "-C" in c]
    assert any("PREROUTING" in c for c in checks)
    ipvs.ops.clear()
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    second = p.sync()
    assert not second.full and not second.error
    assert ipvs.ops == [
        "del-dest tcp 10.0.0.10:80 -> 10.88.1.3:8080 w1",
        "del-dest tcp 192.168.1.10:30080 -> 10.88.1.3:8080 w1",  # the NodePort's virtual server
    ]
    newest = p.history.to_json(with_text=True)[0]  # the ops, with the ipset one, as history
    assert second.lines == 3 and "ipset-del KUBE-LOOP-BACK 10.88.1.3,tcp:8080" in newest["text"]


def test_a_refused_op_owes_a_full_sync() -> None:
    kernel, ipvs = Kernel(), FakeIpvs()
    p, backend = _proxier(kernel, ipvs)
    p.on_service(sync(service("web", "10.0.0.10")))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    ipvs.fail = "add-service"
    record = p.sync()
    assert "add-service tcp 10.0.0.10:80 rr: [Errno 17] File exists" in record.error
    assert p.pending.full and backend.applied is None
    ipvs.fail = None
    assert not p.sync().error
    assert backend.applied is not None


def test_each_sync_closes_its_netlink_sockets_even_when_it_fails() -> None:
    # syncs run on the engine's worker threads: pyroute2 sockets kept from one sync to the
    # next (set up on one thread, used on another) failed with ECONNRESET in a real VM
    kernel, ipvs = Kernel(), FakeIpvs()
    p, _ = _proxier(kernel, ipvs)
    p.on_service(sync(service("web", "10.0.0.10")))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    assert not p.sync().error and ipvs.closed == 1
    ipvs.fail = "add-service"
    p.on_service(sync(service("db", "10.0.0.11")))
    assert p.sync().error and ipvs.closed == 2


def test_the_kernel_check_accepts_ipvs_when_the_kernel_has_it(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "modules").write_text("")
    with pytest.raises(Unsupported, match="CONFIG_IP_VS"):
        check_kernel(tmp_path)
    (tmp_path / "net" / "ip_vs").write_text("")
    check_kernel(tmp_path)


def test_sysctls_upstream_sets_are_set(tmp_path: Path) -> None:
    # vs/conntrack was 0 in a Debian 12 VM: a request from the node to a ClusterIP timed out
    for key in SYSCTLS:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_text("0\n")
    assert ensure_sysctls(tmp_path) == []
    assert (tmp_path / "net/ipv4/vs/conntrack").read_text() == "1\n"
    assert all((tmp_path / key).read_text().strip() == "1" for key in SYSCTLS)
    missing = tmp_path / "none"
    assert ensure_sysctls(missing) == list(SYSCTLS)  # no IPVS sysctls: logged, not raised
