"""What makes the local cluster joinable like a kubeadm cluster: the token Secret, the join
command's CA hash, cluster-info, kubeadm's ConfigMaps (signed as kubeadm signs them), kubeadm's
RBAC objects by name, where each is POSTed, and the apiserver flags of a joinable cluster.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cluster import joining, pki
from cluster.spec import Binaries, ClusterSpec, Ports, apiserver_command

NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)


def _spec(**kw: Any) -> ClusterSpec:
    return ClusterSpec(
        directory=Path("/c"),
        binaries=Binaries(Path("/b"), Path("/b/etcd")),
        ports=Ports(apiserver=7443),
        **kw,
    )


def test_token_format_and_secret() -> None:
    token = joining.new_token()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token.value)
    assert joining.new_token() != token
    secret = joining.token_secret(token, now=NOW)
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert secret["metadata"] == {"name": f"bootstrap-token-{token.id}", "namespace": "kube-system"}
    assert secret["stringData"] == {
        "token-id": token.id,
        "token-secret": token.secret,
        "description": "pykubelet up: a token for joining nodes",
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        "expiration": "2026-12-02T08:00:00Z",
    }
    assert "expiration" not in joining.token_secret(token, now=NOW, ttl=None)["stringData"]


def test_ca_cert_hash_is_sha256_of_the_spki() -> None:
    ca = pki.make_ca("x")
    spki = (
        x509.load_pem_x509_certificate(ca.cert_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert joining.ca_cert_hash(ca.cert_pem) == "sha256:" + hashlib.sha256(spki).hexdigest()
    token = joining.BootstrapToken("abcdef", "0123456789abcdef")
    assert joining.join_command("198.18.1.254:6443", token, "sha256:ff") == (
        "kubeadm join 198.18.1.254:6443 --token abcdef.0123456789abcdef "
        "--discovery-token-ca-cert-hash sha256:ff"
    )


def test_join_endpoint_prefers_the_advertise_address() -> None:
    assert joining.join_endpoint(_spec()) == "127.0.0.1:7443"
    assert joining.join_endpoint(_spec(advertise_address="198.18.1.254")) == "198.18.1.254:7443"


def test_config_maps_kubeadm_join_reads() -> None:
    spec = _spec(advertise_address="198.18.1.254", cluster_cidr="10.88.0.0/16")
    kubeadm, kubelet, info = joining.join_config_maps(spec, b"CA-BUNDLE")
    assert (info["metadata"], list(info["data"])) == (
        {"name": "cluster-info", "namespace": "kube-public"},
        ["kubeconfig"],
    )
    kubeconfig = yaml.safe_load(info["data"]["kubeconfig"])
    (cluster,) = kubeconfig["clusters"]
    assert cluster["name"] == ""
    assert cluster["cluster"]["server"] == "https://198.18.1.254:7443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == b"CA-BUNDLE"
    assert kubeconfig["users"] is None and kubeconfig["current-context"] == ""
    assert kubeadm["metadata"] == {"name": "kubeadm-config", "namespace": "kube-system"}
    cc = yaml.safe_load(kubeadm["data"]["ClusterConfiguration"])
    assert cc["apiVersion"] == "kubeadm.k8s.io/v1beta4" and cc["kind"] == "ClusterConfiguration"
    assert cc["kubernetesVersion"] == "v1.36.3"
    assert cc["controlPlaneEndpoint"] == "198.18.1.254:7443"
    assert cc["networking"] == {
        "dnsDomain": "cluster.local",
        "podSubnet": "10.88.0.0/16",
        "serviceSubnet": "10.0.0.0/24",
    }
    assert kubelet["metadata"]["name"] == "kubelet-config"
    kc = yaml.safe_load(kubelet["data"]["kubelet"])
    assert kc["kind"] == "KubeletConfiguration" and kc["rotateCertificates"] is True
    assert kc["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
    assert kc["clusterDNS"] == ["10.0.0.10"] and kc["cgroupDriver"] == "systemd"
    digest = hashlib.sha256(kubelet["data"]["kubelet"].encode()).hexdigest()
    annotations = kubelet["metadata"]["annotations"]
    assert annotations == {"kubeadm.kubernetes.io/component-config.hash": f"sha256:{digest}"}


def _by_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_rbac_is_kubeadms() -> None:
    objs = _by_name(joining.rbac_objects())
    group = "system:bootstrappers:kubeadm:default-node-token"

    def bound(kind: str, name: str) -> tuple[str, list[str]]:
        obj = objs[(kind, name)]
        return obj["roleRef"]["name"], [f"{s['kind']}:{s['name']}" for s in obj["subjects"]]

    assert bound("ClusterRoleBinding", "kubeadm:kubelet-bootstrap") == (
        "system:node-bootstrapper",
        [f"Group:{group}"],
    )
    csrs = "system:certificates.k8s.io:certificatesigningrequests"
    assert bound("ClusterRoleBinding", "kubeadm:node-autoapprove-bootstrap") == (
        f"{csrs}:nodeclient",
        [f"Group:{group}"],
    )
    assert bound("ClusterRoleBinding", "kubeadm:node-autoapprove-certificate-rotation") == (
        f"{csrs}:selfnodeclient",
        ["Group:system:nodes"],
    )
    assert bound("ClusterRoleBinding", "kubeadm:get-nodes") == (
        "kubeadm:get-nodes",
        [f"Group:{group}"],
    )
    assert objs[("ClusterRole", "kubeadm:get-nodes")]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}
    ]
    for ns, name, cm, subjects in (
        ("kube-system", "kubeadm:nodes-kubeadm-config", "kubeadm-config", 2),
        ("kube-system", "kubeadm:kubelet-config", "kubelet-config", 2),
        ("kube-system", "kube-proxy", "kube-proxy", 1),
        ("kube-public", "kubeadm:bootstrap-signer-clusterinfo", "cluster-info", 1),
    ):
        role, binding = objs[("Role", name)], objs[("RoleBinding", name)]
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == ns
        assert role["rules"][0]["resourceNames"] == [cm] and role["rules"][0]["verbs"] == ["get"]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
        assert len(binding["subjects"]) == subjects
    anonymous = objs[("RoleBinding", "kubeadm:bootstrap-signer-clusterinfo")]["subjects"]
    assert anonymous == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}
    ]


def test_collection_paths() -> None:
    by = _by_name(joining.rbac_objects())
    assert joining.collection_path(by[("Role", "kubeadm:kubelet-config")]) == (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles"
    )
    assert joining.collection_path(by[("ClusterRole", "kubeadm:get-nodes")]) == (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    )
    secret = joining.token_secret(joining.new_token(), now=NOW)
    assert joining.collection_path(secret) == "/api/v1/namespaces/kube-system/secrets"


class FakeApi:
    def __init__(self, existing: dict[str, Any] | None = None) -> None:
        self.existing = existing or {}
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(
        self, spec: ClusterSpec, path: str, *, method: str = "GET", body: Any = None
    ) -> tuple[int, bytes]:
        self.calls.append((method, path, body))
        if method == "POST":
            name = f"{path}/{body['metadata']['name']}"
            return (409, b"{}") if name in self.existing else (201, b"{}")
        if method == "GET":
            return 200, json.dumps(self.existing[path]).encode()
        return 200, b"{}"


def test_apply_updates_config_maps_but_keeps_other_keys() -> None:
    path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    current = {
        "metadata": {"name": "cluster-info"},
        "data": {"kubeconfig": "old", "jws-kubeconfig-x": "sig"},
    }
    api = FakeApi(
        {path: current, "/apis/rbac.authorization.k8s.io/v1/clusterroles/kubeadm:get-nodes": {}}
    )
    objs = [
        joining.cluster_info("h:1", b"CA"),
        _by_name(joining.rbac_objects())[("ClusterRole", "kubeadm:get-nodes")],
    ]
    joining.apply(_spec(), objs, api)
    methods = [(m, p.rsplit("/", 1)[-1]) for m, p, _ in api.calls]
    assert methods == [
        ("POST", "configmaps"),
        ("GET", "cluster-info"),
        ("PUT", "cluster-info"),
        ("POST", "clusterroles"),
    ]
    put = api.calls[2][2]
    assert put["data"]["jws-kubeconfig-x"] == "sig" and put["data"]["kubeconfig"] != "old"


def test_apply_names_a_refused_object() -> None:
    def refuse(spec: ClusterSpec, path: str, **kw: Any) -> tuple[int, bytes]:
        return 403, b"forbidden"

    with pytest.raises(RuntimeError, match="creating ClusterRole kubeadm:get-nodes gave HTTP 403"):
        joining.apply(
            _spec(),
            [_by_name(joining.rbac_objects())[("ClusterRole", "kubeadm:get-nodes")]],
            refuse,
        )


def test_apiserver_flags_of_a_joinable_cluster() -> None:
    plain = apiserver_command(_spec())
    assert "--anonymous-auth=false" in plain and "--enable-bootstrap-token-auth=true" in plain
    assert "--bind-address=127.0.0.1" in plain
    joinable = apiserver_command(_spec(joinable=True, advertise_address="198.18.1.254"))
    assert "--anonymous-auth=true" in joinable
    assert "--bind-address=0.0.0.0" in joinable
    assert "--advertise-address=198.18.1.254" in joinable
