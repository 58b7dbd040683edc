"""Cluster DNS as `up` deploys it: the clusterDNS address, the kubelet's DNS lines, the Corefile and
manifests in upstream's addon shape, and the minimal DNS client's wire format. Pure; no cluster."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from cluster import dns


def test_version_and_image_follow_the_wrapper_module() -> None:
    assert dns.coredns_version("module x\n\nrequire github.com/coredns/coredns v1.15.0\n") == (
        "v1.15.0"
    )
    assert dns.coredns_image("v1.15.0") == "registry.k8s.io/coredns/coredns:v1.15.0"
    assert dns.coredns_version().startswith("v1.")  # the shipped go.mod
    with pytest.raises(ValueError, match="coredns"):
        dns.coredns_version("module x\n")


def test_service_ip_is_the_tenth_address_inside_the_range() -> None:
    assert dns.service_ip("10.0.0.0/24") == "10.0.0.10"
    assert dns.service_ip("10.96.0.0/12") == "10.96.0.10"
    with pytest.raises(ValueError, match="too small"):
        dns.service_ip("10.0.0.0/29")


def test_agent_config_lines(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    assert dns.agent_config_lines("10.0.0.0/24", etc_resolv_conf=resolv) == [
        "clusterDNS: [10.0.0.10]",
        "clusterDomain: cluster.local",
    ]


@pytest.mark.parametrize(
    ("text", "exists", "expected"),
    [
        ("nameserver 127.0.0.53\noptions edns0\n", True, "/run/systemd/resolve/resolv.conf"),
        ("nameserver 127.0.0.53\n", False, None),  # no upstream file: keep the default
        ("nameserver 10.255.255.53\n", True, None),
        ("# nameserver 127.0.0.53\nnameserver 1.1.1.1\n", True, None),
    ],
)
def test_resolv_conf_for_pods_like_kubeadm(text: str, exists: bool, expected: str | None) -> None:
    assert dns.resolv_conf_for_pods(text, resolved_upstream_exists=exists) == expected


def test_corefile_is_upstreams() -> None:
    text = dns.corefile()
    blocks = [ln.strip() for ln in text.splitlines()]
    for line in (
        ".:53 {",
        "errors",
        "lameduck 5s",
        "ready",
        "kubernetes cluster.local in-addr.arpa ip6.arpa {",
        "pods insecure",
        "fallthrough in-addr.arpa ip6.arpa",
        "ttl 30",
        "prometheus :9153",
        "forward . /etc/resolv.conf {",
        "cache 30",
        "loop",
        "reload",
        "loadbalance",
    ):
        assert line in blocks, line
    assert text.count("{") == text.count("}")


def test_manifests_in_upstream_shape() -> None:
    objs = dns.manifests("img:1", "10.0.0.10", replicas=2)
    assert [o["kind"] for o in objs] == [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    ]
    sa, role, binding, cm, deploy, svc = objs
    assert role["metadata"]["name"] == binding["metadata"]["name"] == "system:coredns"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}
    ]
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert {"endpointslices", "services", "pods", "namespaces"} <= resources
    assert cm["data"]["Corefile"] == dns.corefile()
    assert deploy["metadata"]["name"] == "coredns"
    assert deploy["metadata"]["labels"] == {"k8s-app": "kube-dns"}
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 2 and pod["dnsPolicy"] == "Default"
    assert pod["serviceAccountName"] == "coredns"
    assert pod["priorityClassName"] == "system-cluster-critical"
    (c,) = pod["containers"]
    assert c["image"] == "img:1" and c["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8181, "scheme": "HTTP"}
    assert c["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    assert svc["metadata"]["name"] == "kube-dns" and svc["metadata"]["namespace"] == "kube-system"
    assert svc["spec"]["clusterIP"] == "10.0.0.10"
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
    ]
    assert sa["metadata"] == {"name": "coredns", "namespace": "kube-system"}


def test_api_paths() -> None:
    paths = [dns.api_path(o) for o in dns.manifests("i", "10.0.0.10", replicas=1)]
    assert paths == [
        "/api/v1/namespaces/kube-system/serviceaccounts",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "/api/v1/namespaces/kube-system/configmaps",
        "/apis/apps/v1/namespaces/kube-system/deployments",
        "/api/v1/namespaces/kube-system/services",
    ]


def test_query_wire_format() -> None:
    q = dns.query("kubernetes.default.svc.cluster.local.", ident=0x1234)
    assert q[:12] == struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    assert q[12:] == (
        b"\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00" + struct.pack("!HH", 1, 1)
    )


def _reply(ident: int, rcode: int, answers: list[tuple[int, bytes]]) -> bytes:
    q = dns.query("a.b", ident=ident)
    header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(answers), 0, 0)
    body = q[12:]
    for rtype, rdata in answers:  # compressed name pointing at the question
        body += b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 30, len(rdata)) + rdata
    return header + body


def test_parse_answer() -> None:
    msg = _reply(7, 0, [(5, b"\x01x\x00"), (1, bytes([10, 0, 0, 1])), (1, bytes([10, 0, 0, 2]))])
    assert dns.parse_answer(msg, ident=7) == dns.Answer(0, ("10.0.0.1", "10.0.0.2"))
    assert dns.parse_answer(_reply(7, 3, []), ident=7) == dns.Answer(3, ())
    with pytest.raises(ValueError, match="does not match"):
        dns.parse_answer(msg, ident=8)
    with pytest.raises(ValueError, match="truncated"):
        dns.parse_answer(msg[:-3], ident=7)
    with pytest.raises(ValueError, match="not a reply"):
        dns.parse_answer(dns.query("a.b", ident=7), ident=7)
    with pytest.raises(ValueError, match="shorter"):
        dns.parse_answer(b"\0\0")
