"""The documented node-IP rule (kube.facts.choose_node_ip) on plain host data."""

from __future__ import annotations

from kube.facts import HostAddress, choose_node_ip

VAGRANT = [
    HostAddress("lo", "127.0.0.1", False, False),
    HostAddress("eth0", "10.0.2.15", True, True),  # NAT: same address on every VM
    HostAddress("eth1", "192.168.56.11", True, False),  # the private network
    HostAddress("pykbr0", "10.88.0.1", True, False),
]


def test_vagrant_picks_private_network_not_default_route() -> None:
    assert choose_node_ip([], VAGRANT) == "192.168.56.11"


def test_hostname_address_on_this_host_wins() -> None:
    assert choose_node_ip(["10.0.2.15"], VAGRANT) == "10.0.2.15"


def test_hostname_address_not_on_this_host_or_loopback_is_ignored() -> None:
    assert choose_node_ip(["127.0.1.1", "203.0.113.9"], VAGRANT) == "192.168.56.11"


def test_single_uplink_falls_back_to_default_route_interface() -> None:
    addrs = [
        HostAddress("eth0", "192.0.2.2", True, True),
        HostAddress("cni0", "10.1.0.1", True, False),
    ]
    assert choose_node_ip([], addrs) == "192.0.2.2"


def test_nothing_usable_gives_loopback() -> None:
    assert choose_node_ip([], [HostAddress("pk123", "10.9.0.1", True, False)]) == "127.0.0.1"
