"""RouteSyncer against real kernels: two netns hosts reach each other's pod CIDRs through the
routes it makes (host-gw and VXLAN), and it removes what belongs to Nodes that went away."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from net import netns
from net.routes.kernel import RTPROT_PYKUBELET
from net.routes.syncer import RouteSyncer

from .netns_hosts import Host, hosts

T = TypeVar("T")
SUBNET = "10.124.0"


def node(name: str, ip: str, cidr: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def in_netns(host: Host, fn: Callable[[], T]) -> T:
    """Run fn on a fresh worker thread that has entered the host's netns."""

    def call() -> T:
        with netns.entered(f"/run/netns/{host.netns}"):
            return fn()

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(call).result(timeout=30)


@pytest.fixture(scope="module")
def two_hosts(root_required: None) -> Iterator[tuple[Host, Host]]:
    with hosts(2, subnet=SUBNET, prefix="pkrt") as (h1, h2):
        for i, h in enumerate((h1, h2)):
            h.run("ip", "link", "add", "cbr0", "type", "bridge")
            h.run("ip", "addr", "add", f"10.9.{i}.1/24", "dev", "cbr0")
            h.run("ip", "link", "set", "cbr0", "up")
            h.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield h1, h2


def nodes(h1: Host, h2: Host) -> list[dict[str, Any]]:
    return [node("n1", h1.address, "10.9.0.0/24"), node("n2", h2.address, "10.9.1.0/24")]


def our_routes(h: Host) -> list[dict[str, Any]]:
    out = h.run("ip", "-j", "route", "show", "proto", str(RTPROT_PYKUBELET))
    return list(json.loads(out or "[]"))


def sync(h: Host, name: str, ns: list[dict[str, Any]], **kw: Any) -> RouteSyncer:
    s = RouteSyncer(name, **kw)
    try:
        in_netns(h, lambda: s.sync(ns))
    finally:
        s.close()
    return s


def ping(h: Host, src: str, dst: str) -> bool:
    try:
        h.run("busybox", "ping", "-c", "1", "-W", "2", "-I", src, dst)
    except RuntimeError:
        return False
    return True


def test_host_gw_routes_connect_pod_cidrs_and_go_with_their_node(
    two_hosts: tuple[Host, Host],
) -> None:
    h1, h2 = two_hosts
    assert not ping(h1, "10.9.0.1", "10.9.1.1")
    sync(h1, "n1", nodes(h1, h2))
    sync(h2, "n2", nodes(h1, h2))
    assert [(r["dst"], r["gateway"]) for r in our_routes(h1)] == [("10.9.1.0/24", h2.address)]
    assert ping(h1, "10.9.0.1", "10.9.1.1")
    # a route someone else made is never touched
    h1.run("ip", "route", "add", "10.77.0.0/24", "via", h2.address)
    sync(h1, "n1", nodes(h1, h2)[:1])  # n2 went away
    assert our_routes(h1) == []
    assert "10.77.0.0/24" in h1.run("ip", "route", "show")
    h1.run("ip", "route", "del", "10.77.0.0/24")
    # nor is someone else's route to a pod CIDR we would route: reported, left alone
    h1.run("ip", "route", "add", "10.9.1.0/24", "via", h2.address, "proto", "static")
    s = sync(h1, "n1", nodes(h1, h2))
    assert our_routes(h1) == [] and "did not make (protocol 4)" in s.last_errors[0]
    assert "10.9.1.0/24 via" in h1.run("ip", "route", "show", "proto", "static")
    h1.run("ip", "route", "del", "10.9.1.0/24")
    sync(h2, "n2", nodes(h1, h2)[1:])


def test_vxlan_connects_pod_cidrs_and_cleans_up(two_hosts: tuple[Host, Host]) -> None:
    h1, h2 = two_hosts
    sync(h1, "n1", nodes(h1, h2), mode="vxlan", vxlan_id=42)
    sync(h2, "n2", nodes(h1, h2), mode="vxlan", vxlan_id=42)
    try:
        (route,) = our_routes(h1)
        assert (route["dst"], route["gateway"], route["dev"]) == (
            "10.9.1.0/24",
            "10.9.1.0",
            "pykvx.42",
        )
        assert "onlink" in route.get("flags", [])
        fdb = h1.run("bridge", "fdb", "show", "dev", "pykvx.42")
        assert f"dst {h2.address}" in fdb
        assert ping(h1, "10.9.0.1", "10.9.1.1")
        # same VNI again: idempotent, nothing duplicated
        sync(h1, "n1", nodes(h1, h2), mode="vxlan", vxlan_id=42)
        assert len(our_routes(h1)) == 1
        assert h1.run("bridge", "fdb", "show", "dev", "pykvx.42").count("dst ") == 1
        # a new podCIDR for n1: its VTEP's old tunnel address goes, the new one comes
        moved = [node("n1", h1.address, "10.9.5.0/24"), nodes(h1, h2)[1]]
        sync(h1, "n1", moved, mode="vxlan", vxlan_id=42)
        addrs = h1.run("ip", "-4", "-br", "addr", "show", "dev", "pykvx.42")
        assert "10.9.5.0/32" in addrs and "10.9.0.0/32" not in addrs
        assert "fe80::" in h1.run("ip", "-6", "addr", "show", "dev", "pykvx.42")  # not ours
    finally:
        for h, name in ((h1, "n1"), (h2, "n2")):
            s = RouteSyncer(name, mode="vxlan", vxlan_id=42)
            in_netns(h, s.remove)
            s.close()
    assert our_routes(h1) == [] and "pykvx" not in h1.run("ip", "link", "show")
