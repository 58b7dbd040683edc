"""Unit tests of the simulated-node layout (cluster.nodes): names, addresses, dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import nodes
from cluster.spec import Binaries, ClusterSpec


def spec(**kw: object) -> ClusterSpec:
    base: dict[str, object] = {
        "directory": Path("/c"),
        "binaries": Binaries(Path("/k"), Path("/e")),
        "node_names": ("a", "b"),
        "node_subnet": "198.18.7.0/24",
        "netns_prefix": "pkm42",
    }
    base.update(kw)
    return ClusterSpec(**base)  # type: ignore[arg-type]


def test_layout_is_per_prefix_and_per_node() -> None:
    s = spec()
    a, b = nodes.sim_nodes(s)
    assert (a.name, a.netns, a.address) == ("a", "pkm42-n1", "198.18.7.1")
    assert (b.netns, b.address) == ("pkm42-n2", "198.18.7.2")
    assert a.containerd_socket != b.containerd_socket
    assert a.cni_conf_dir == Path("/c/nodes/a/cni/net.d")
    assert nodes.switch_netns(s) == "pkm42-sw"
    assert nodes.root_link(s) == "pkm42-up"
    assert nodes.root_address(s) == "198.18.7.254"


def test_no_subnet_means_no_simulated_nodes() -> None:
    assert nodes.sim_nodes(spec(node_subnet="")) == []


@pytest.mark.parametrize("subnet", ["fd00::/64", "198.18.7.0/25", "nope"])
def test_bad_subnet_is_refused(subnet: str) -> None:
    with pytest.raises(ValueError):
        nodes.sim_nodes(spec(node_subnet=subnet))


def test_link_name_fits_ifnamsiz() -> None:
    assert len(nodes.root_link(spec(netns_prefix="a-very-long-prefix"))) <= 15
