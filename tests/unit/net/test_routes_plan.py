"""Unit tests of the node-route planner (net.routes.plan): plain Node dicts in, routes out."""

from __future__ import annotations

from typing import Any

import pytest

from net.routes.plan import LocalVtep, Route, VxlanPeer, plan, vtep_address, vtep_mac


def node(name: str, ips: list[str] | None = None, cidrs: list[str] | None = None) -> dict[str, Any]:
    n: dict[str, Any] = {"metadata": {"name": name}, "spec": {}, "status": {}}
    if cidrs:
        n["spec"] = {"podCIDR": cidrs[0], "podCIDRs": cidrs}
    if ips is not None:
        n["status"]["addresses"] = [{"type": "Hostname", "address": name}] + [
            {"type": "InternalIP", "address": ip} for ip in ips
        ]
    return n


NODES = [
    node("a", ["192.168.5.2"], ["10.9.0.0/24"]),
    node("b", ["192.168.5.3"], ["10.9.1.0/24"]),
    node("c", ["192.168.5.4"], ["10.9.2.0/24"]),
]


def test_host_gw_routes_every_other_node() -> None:
    p = plan("a", NODES)
    assert p.routes == (
        Route("b", "10.9.1.0/24", "192.168.5.3"),
        Route("c", "10.9.2.0/24", "192.168.5.4"),
    )
    assert p.vtep is None and p.peers == () and p.skipped == ()


def test_node_that_went_away_has_no_route() -> None:
    assert [r.node for r in plan("a", NODES[:2]).routes] == ["b"]


def test_nodes_without_cidr_or_ip_are_skipped_with_reason() -> None:
    nodes = [NODES[0], node("b", ["192.168.5.3"]), node("c", None, ["10.9.2.0/24"])]
    p = plan("a", nodes)
    assert p.routes == ()
    assert p.skipped == ("node b: no podCIDR yet", "node c: no InternalIP address")


def test_dual_stack_routes_use_same_family_gateway() -> None:
    nodes = [
        node("a", ["192.168.5.2", "fd00::2"], ["10.9.0.0/24", "fd10::/64"]),
        node("b", ["192.168.5.3", "fd00::3"], ["10.9.1.0/24", "fd10:0:0:1::/64"]),
    ]
    assert plan("a", nodes).routes == (
        Route("b", "10.9.1.0/24", "192.168.5.3"),
        Route("b", "fd10:0:0:1::/64", "fd00::3"),
    )


def test_ipv6_cidr_without_ipv6_address_is_skipped() -> None:
    nodes = [NODES[0], node("b", ["192.168.5.3"], ["10.9.1.0/24", "fd10::/64"])]
    p = plan("a", nodes)
    assert [r.dst for r in p.routes] == ["10.9.1.0/24"]
    assert p.skipped == ("node b: no IPv6 InternalIP for fd10::/64",)


def test_overlapping_cidr_is_refused() -> None:
    p = plan("a", [NODES[0], node("b", ["192.168.5.3"], ["10.9.0.0/16"])])
    assert p.routes == ()
    assert "overlaps this node's 10.9.0.0/24" in p.skipped[0]


def test_remote_nodes_with_overlapping_cidrs_get_one_route_not_a_flapping_pair() -> None:
    """Two Nodes claiming the same podCIDR (a re-registered node, a bad IPAM) would make each
    sync replace the route with the other gateway; the first by name keeps it."""
    stale = node("b-old", ["192.168.5.9"], ["10.9.1.0/25"])
    p = plan("a", [*NODES, stale])
    assert [(r.dst, r.gateway) for r in p.routes] == [
        ("10.9.1.0/24", "192.168.5.3"),
        ("10.9.2.0/24", "192.168.5.4"),
    ]
    assert p.skipped == ("node b-old: podCIDR 10.9.1.0/25 overlaps node b's 10.9.1.0/24",)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"metadata": None},
        {"metadata": {"name": "x"}, "spec": "nope", "status": {"addresses": "x"}},
        {"metadata": {"name": "y"}, "spec": {"podCIDR": "not-a-cidr"}},
        {"metadata": {"name": "z"}, "spec": {"podCIDRs": [1]}, "status": {"addresses": [3]}},
        {
            "metadata": {"name": "w"},
            "spec": {"podCIDR": "10.9.7.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "999.1.1.1"}]},
        },
    ],
)
def test_garbage_nodes_never_raise(bad: Any) -> None:
    p = plan("a", [*NODES, bad, "string-not-a-node"])  # type: ignore[list-item]
    assert [r.node for r in p.routes] == ["b", "c"]


def test_duplicate_node_is_reported() -> None:
    assert plan("a", [*NODES, NODES[1]]).skipped == ("node b: listed twice",)


def test_vxlan_plan_has_fdb_neighbour_and_onlink_route() -> None:
    p = plan("a", NODES, mode="vxlan", vxlan_id=7, vxlan_port=4789)
    assert p.vtep == LocalVtep("pykvx.7", "0e:70:c0:a8:05:02", "10.9.0.0", "192.168.5.2", 7, 4789)
    assert p.peers[0] == VxlanPeer("b", "192.168.5.3", "0e:70:c0:a8:05:03", "10.9.1.0")
    assert p.routes[0] == Route("b", "10.9.1.0/24", "10.9.1.0", "pykvx.7", onlink=True)
    assert len(p.routes) == len(p.peers) == 2


def test_vxlan_without_own_cidr_plans_nothing() -> None:
    p = plan("a", [node("a", ["192.168.5.2"]), NODES[1]], mode="vxlan")
    assert p.vtep is None and p.routes == ()
    assert p.skipped == ("node a: vxlan mode needs an IPv4 podCIDR on this node",)


def test_vtep_helpers() -> None:
    assert vtep_mac("10.0.0.1") == "0e:70:0a:00:00:01"
    assert vtep_address("10.244.3.0/24") == "10.244.3.0"


@pytest.mark.parametrize(
    "kwargs", [{"mode": "ipip"}, {"vxlan_id": 0}, {"vxlan_id": 2**24}, {"vxlan_port": 0}]
)
def test_bad_options_raise_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        plan("a", NODES, **kwargs)
