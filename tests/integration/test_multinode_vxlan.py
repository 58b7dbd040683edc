"""Simulated nodes with `--route-mode vxlan`: pod to pod across nodes over the VXLAN device that
`pykubelet proxy` builds, with protocol-112 routes via each peer's tunnel address."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.spec import ClusterSpec
from net.routes.kernel import RTPROT_PYKUBELET
from net.routes.plan import vtep_address

from .multinode import container_id, crictl, in_node, multinode_cluster, pod, running, sim
from .podutil import create_pod, new_namespace

A, B = "vx-a", "vx-b"


@pytest.fixture(scope="module")
def vx(root_required: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    path = Path(tmp_path_factory.mktemp("vxlan"))
    with multinode_cluster(path, (A, B), route_mode="vxlan", tag="pkv") as spec:
        yield spec


def test_pod_reaches_pod_over_vxlan(vx: ClusterSpec) -> None:
    ns = new_namespace(vx)
    create_pod(vx, ns, pod("srv", B, "nc -ll -p 8080 -e echo pong-vxlan"))
    create_pod(vx, ns, pod("cli", A, "sleep 3600"))
    srv, cli = running(vx, ns, "srv"), running(vx, ns, "cli")
    routes = json.loads(
        in_node(sim(vx, A), "ip", "-j", "route", "show", "proto", str(RTPROT_PYKUBELET))
    )
    ip = ipaddress.ip_address(srv["status"]["podIP"])
    (route,) = [r for r in routes if ip in ipaddress.ip_network(r["dst"])]
    b_cidr = route["dst"]
    assert route["dev"] == "pykvx.1" and route["gateway"] == vtep_address(b_cidr)
    fdb = in_node(sim(vx, A), "bridge", "fdb", "show", "dev", "pykvx.1")
    assert f"dst {sim(vx, B).address}" in fdb
    out = crictl(
        vx, sim(vx, A), "exec", container_id(cli), "nc", "-w", "3", srv["status"]["podIP"], "8080"
    )
    assert out.strip() == "pong-vxlan"
