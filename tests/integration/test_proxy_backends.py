"""Each mode's backend under the sync engine against the real kernel, in a scratch netns: the same
behaviour checked in every mode that runs here. A change lands as a partial sync; a transaction
the kernel refuses changes nothing, and the full sync that follows applies; a restarted proxy
(a new backend that remembers nothing) removes what Services deleted meanwhile left behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from net import netns
from net.nft import ir
from net.nft.netlink import NftNetlink, TableObjects
from net.proxy import model
from net.proxy.backend import ProxyBackend
from net.proxy.history import History
from net.proxy.iptables import executor as iptables_exec
from net.proxy.iptables.backend import IptablesBackend
from net.proxy.iptables.executor import Executor
from net.proxy.metrics import ProxyMetrics
from net.proxy.nftables.backend import NftBackend
from net.proxy.nftables.rules import SHARED_TABLE
from net.proxy.proxier import Proxier
from tests.unit.net.proxy.objects import endpoint_slice, modified, service, sync

CONFIG = model.ProxyConfig(node_name="n1", node_ips=("10.9.0.1",), cluster_cidr="10.88.0.0/16")


@dataclass
class Scratch:
    """One mode in a scratch netns: new backends (each one a restarted proxy), the rules as
    the kernel lists them, and a switch that has the kernel refuse every transaction."""

    mode: str
    netns: str
    new_backend: Callable[[], ProxyBackend]
    list_rules: Callable[[], str]
    dnat: Callable[[str], str]
    """How the listing shows a DNAT to ip:port."""
    refuse: list[bool] = field(default_factory=lambda: [False])
    closers: list[Callable[[], None]] = field(default_factory=list)

    def engine(self) -> Proxier:
        backend = self.new_backend()
        self.closers.append(backend.close)
        return Proxier(
            CONFIG, backend, metrics=ProxyMetrics(CollectorRegistry()), history=History()
        )


def _run_in(name: str, refuse: list[bool]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """subprocess.run inside the netns; while refused, each restore input ends with a rule
    that jumps to a chain nobody made, so iptables-restore refuses the last table."""

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        text = kw.get("input")
        if refuse[0] and text and cmd[0].endswith("-restore"):
            head, _, tail = text.rpartition("COMMIT")
            kw["input"] = f"{head}-A KUBE-SERVICES -j KUBE-NO-SUCH-CHAIN\nCOMMIT{tail}"
        return subprocess.run(["nsenter", f"--net=/run/netns/{name}", "--", *cmd], **kw)

    return run


def _iptables(name: str) -> Scratch:
    refuse = [False]
    run = _run_in(name, refuse)
    found = iptables_exec.detect(run)

    def listing() -> str:
        saved = Executor(found, run=run).save(("nat", "filter"))
        return "\n".join(sorted(ln for ln in saved.splitlines() if ln.startswith(("-A", ":K"))))

    return Scratch(
        "iptables",
        name,
        lambda: IptablesBackend(Executor(found, run=run)),
        listing,
        lambda address: f"--to-destination {address}",
        refuse,
    )


class Refusing:
    """The real netlink socket; while refused, each batch ends with an op the kernel refuses."""

    def __init__(self, nl: NftNetlink, refuse: list[bool]) -> None:
        self.nl = nl
        self.refuse = refuse

    def apply(self, ops: Sequence[ir.Op]) -> None:
        if self.refuse[0]:
            ops = [*ops, ir.DeleteChain(SHARED_TABLE, "no-such-chain")]
        self.nl.apply(ops)

    def tables(self, prefix: str) -> dict[str, TableObjects]:
        return self.nl.tables(prefix)

    def close(self) -> None:
        self.nl.close()


def _socket_in(name: str) -> NftNetlink:
    def opened() -> NftNetlink:
        with netns.entered(f"/run/netns/{name}"):
            return NftNetlink()  # the socket stays in the netns it was made in

    with ThreadPoolExecutor(1) as pool:  # entering a netns changes the calling thread
        return pool.submit(opened).result()


def _nftables(name: str) -> Scratch:
    refuse = [False]

    def listing() -> str:
        r = subprocess.run(
            ["ip", "netns", "exec", name, "nft", "list", "ruleset"], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    return Scratch(
        "nftables",
        name,
        lambda: NftBackend(Refusing(_socket_in(name), refuse)),
        listing,
        lambda address: f"dnat to {address}",
        refuse,
    )


MODES = {"iptables": _iptables, "nftables": _nftables}


@pytest.fixture(params=sorted(MODES))
def scratch(request: pytest.FixtureRequest, root_required: None) -> Iterator[Scratch]:
    name = f"pkb{request.param[:2]}{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    made = MODES[request.param](name)
    try:
        yield made
    finally:
        for close in made.closers:
            close()
        subprocess.run(["ip", "netns", "delete", name], check=False)


def _prime(p: Proxier) -> None:
    p.on_service(sync(service("web", "10.0.0.10"), service("db", "10.0.0.11", 5432)))
    p.on_slice(
        sync(
            endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.3"]),
            endpoint_slice("db-1", "db", ["10.88.1.5"], 5432),
        )
    )


def test_a_change_lands_as_a_partial_sync(scratch: Scratch) -> None:
    p = scratch.engine()
    _prime(p)
    first = p.sync()
    assert first.full and not first.error, first.error
    listed = scratch.list_rules()
    assert scratch.dnat("10.88.1.3:8080") in listed and scratch.dnat("10.88.1.5:5432") in listed
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.2", "10.88.1.9"])))
    second = p.sync()
    assert not second.full and not second.error, second.error
    assert second.changed == ("default/web",) and second.removed
    listed = scratch.list_rules()
    assert scratch.dnat("10.88.1.9:8080") in listed and "10.88.1.3" not in listed
    assert scratch.dnat("10.88.1.5:5432") in listed


def test_a_refused_sync_changes_nothing_and_the_full_retry_applies(scratch: Scratch) -> None:
    p = scratch.engine()
    _prime(p)
    assert not p.sync().error
    before = scratch.list_rules()
    scratch.refuse[0] = True
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.9"])))
    failed = p.sync()
    assert not failed.full and failed.error
    assert scratch.list_rules() == before  # all or nothing
    scratch.refuse[0] = False
    retry = p.sync()
    assert retry.full and not retry.error, retry.error
    after = scratch.list_rules()
    assert scratch.dnat("10.88.1.9:8080") in after and "10.88.1.2" not in after


def test_a_restarted_proxy_removes_what_services_gone_meanwhile_left(scratch: Scratch) -> None:
    p = scratch.engine()
    _prime(p)
    assert not p.sync().error
    # A new process (nothing remembered) whose state lacks "web": its first, full sync finds
    # web's rules in the kernel and deletes them.
    restarted = scratch.engine()
    restarted.on_service(sync(service("db", "10.0.0.11", 5432)))
    restarted.on_slice(sync(endpoint_slice("db-1", "db", ["10.88.1.5"], 5432)))
    record = restarted.sync()
    assert record.full and not record.error, record.error
    assert record.removed
    listed = scratch.list_rules()
    assert "10.0.0.10" not in listed and "10.88.1.2" not in listed
    assert scratch.dnat("10.88.1.5:5432") in listed
