"""The add-ons' pure parts: the `kubernetes` Service's endpoints written for pods, the address
pods reach the apiserver at, and the CoreDNS image recipe. No cluster, no root."""

from __future__ import annotations

import struct
from pathlib import Path

from cluster import addons, images
from cluster.spec import Binaries, ClusterSpec


def test_gateway_is_the_first_host_of_the_pod_cidr() -> None:
    assert addons.gateway("10.88.0.0/24") == "10.88.0.1"
    assert addons.gateway("10.88.3.0/24") == "10.88.3.1"


def test_pod_apiserver_address_on_simulated_nodes(tmp_path: Path) -> None:
    spec = ClusterSpec(
        directory=tmp_path,
        binaries=Binaries(kubernetes=tmp_path, etcd=tmp_path / "etcd"),
        node_names=("n-1", "n-2"),
        node_subnet="198.18.0.0/24",
    )
    assert addons.pod_apiserver_address(spec) == "198.18.0.254"


def test_kubernetes_endpoints_as_the_reconciler_writes_them() -> None:
    (ep, ep_path), (eps, eps_path) = addons.kubernetes_endpoints("10.88.0.1", 6443)
    assert ep_path == "/api/v1/namespaces/default/endpoints"
    assert eps_path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    assert ep["metadata"]["name"] == eps["metadata"]["name"] == "kubernetes"
    assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert ep["subsets"] == [
        {
            "addresses": [{"ip": "10.88.0.1"}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        }
    ]
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert eps["addressType"] == "IPv4"
    assert eps["endpoints"] == [{"addresses": ["10.88.0.1"], "conditions": {"ready": True}}]


def test_file_capability_is_what_setcap_writes() -> None:
    # `setcap cap_net_bind_service=+ep` -> VFS_CAP_REVISION_2 | effective, permitted bit 10
    assert images.file_capability(10) == struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
    assert images.file_capability(40) == struct.pack("<IIIII", 0x02000001, 0, 0, 1 << 8, 0)


def test_coredns_recipe(tmp_path: Path) -> None:
    binary = tmp_path / "coredns"
    binary.write_bytes(b"\x7fELF coredns")
    r = images.coredns_recipe("registry.k8s.io/coredns/coredns:v1.15.0", binary)
    assert r.name == "registry.k8s.io/coredns/coredns:v1.15.0"
    args = list(r.config_args)
    assert args[args.index("--config.entrypoint") + 1] == "/coredns"
    assert args[args.index("--config.user") + 1] == "65532:65532"
    other = tmp_path / "other"
    other.write_bytes(b"\x7fELF other")
    assert images.coredns_recipe(r.name, other).inputs != r.inputs
