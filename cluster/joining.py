"""What makes the local cluster joinable like a kubeadm cluster: kubeadm's RBAC for bootstrap
tokens and node CSRs, bootstrap token Secrets, and the objects `kubeadm join` reads (cluster-info in
kube-public, kubeadm-config and kubelet-config in kube-system). Objects are built here as plain
dicts (pure); `apply` sends them through the harness's api function; nothing else is touched.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cluster.spec import ClusterSpec

Json = dict[str, Any]
Api = Callable[..., tuple[int, bytes]]
"""cluster.up.api: (spec, path, method=, body=) -> (HTTP status, body)."""

KUBERNETES_VERSION = "v1.36.3"
TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
"""The group kubeadm's node bootstrap tokens authenticate in (auth-extra-groups)."""
NODES_GROUP = "system:nodes"
TOKEN_TTL = datetime.timedelta(hours=24)
"""kubeadm's default token TTL; the controller-manager's tokencleaner deletes expired tokens."""
RBAC = "rbac.authorization.k8s.io"
_TOKEN_CHARS = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class BootstrapToken:
    """A bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}: the Secret's name carries the id."""

    id: str
    secret: str

    @property
    def value(self) -> str:
        return f"{self.id}.{self.secret}"

    @property
    def secret_name(self) -> str:
        return f"bootstrap-token-{self.id}"


def new_token() -> BootstrapToken:
    pick = secrets.choice
    return BootstrapToken(
        "".join(pick(_TOKEN_CHARS) for _ in range(6)),
        "".join(pick(_TOKEN_CHARS) for _ in range(16)),
    )


def token_secret(
    token: BootstrapToken,
    *,
    now: datetime.datetime,
    ttl: datetime.timedelta | None = TOKEN_TTL,
    description: str = "pykubelet up: a token for joining nodes",
) -> Json:
    """The token's Secret as kubeadm writes it: both usages, kubeadm's node group; it expires
    after `ttl` (None: never)."""
    data = {
        "token-id": token.id,
        "token-secret": token.secret,
        "description": description,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": TOKEN_GROUP,
    }
    if ttl is not None:
        data["expiration"] = (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token.secret_name, "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    }


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA's SubjectPublicKeyInfo."""
    spki = (
        x509.load_pem_x509_certificate(ca_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return f"sha256:{hashlib.sha256(spki).hexdigest()}"


def join_endpoint(spec: ClusterSpec) -> str:
    """host:port the joining nodes reach the apiserver at (the advertise address, if any)."""
    return f"{spec.advertise_address or spec.address}:{spec.ports.apiserver}"


def join_command(endpoint: str, token: BootstrapToken, ca_hash: str) -> str:
    return f"kubeadm join {endpoint} --token {token.value} --discovery-token-ca-cert-hash {ca_hash}"


def _config_map(namespace: str, name: str, data: dict[str, str]) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def cluster_info(endpoint: str, ca_bundle: bytes) -> Json:
    """kube-public/cluster-info: a kubeconfig with the server and the CA bundle only (the
    controller-manager's bootstrapsigner adds a jws-kubeconfig-<token id> key per token)."""
    kubeconfig: Json = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "",
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_bundle).decode(),
                    "server": f"https://{endpoint}",
                },
            }
        ],
        "contexts": None,
        "current-context": "",
        "preferences": {},
        "users": None,
    }
    return _config_map("kube-public", "cluster-info", {"kubeconfig": yaml.safe_dump(kubeconfig)})


def cluster_configuration(spec: ClusterSpec) -> str:
    """The ClusterConfiguration (kubeadm.k8s.io/v1beta4) kubeadm join reads from kubeadm-config."""
    doc = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "clusterName": "kubernetes",
        "kubernetesVersion": KUBERNETES_VERSION,
        "controlPlaneEndpoint": join_endpoint(spec),
        "certificatesDir": "/etc/kubernetes/pki",
        "imageRepository": "registry.k8s.io",
        "networking": {
            "dnsDomain": "cluster.local",
            "podSubnet": spec.cluster_cidr,
            "serviceSubnet": spec.service_cidr,
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def cluster_dns(spec: ClusterSpec) -> str:
    """The DNS Service IP kubeadm picks: the 10th address of the Service range."""
    base, _ = spec.service_cidr.split("/")
    octets = base.split(".")
    octets[-1] = str(int(octets[-1]) + 10)
    return ".".join(octets)


def kubelet_configuration(spec: ClusterSpec) -> str:
    """The KubeletConfiguration for joining (Vagrant) nodes: systemd cgroups, client certificate
    rotation, the CA kubeadm writes from cluster-info for x509 callers, webhook authn/authz,
    image GC off (the nodes have no registry either), graceful node shutdown (60 s, the last
    10 s for critical pods) through logind's inhibitor lock."""
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "0s"},
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "systemd",
        "clusterDNS": [cluster_dns(spec)],
        "clusterDomain": "cluster.local",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "imageGCHighThresholdPercent": 100,
        "rotateCertificates": True,
        "shutdownGracePeriod": "60s",
        "shutdownGracePeriodCriticalPods": "10s",
        "staticPodPath": "/etc/kubernetes/manifests",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def signed(config_map: Json) -> Json:
    """kubeadm's component-config signature: sha256 over the values in key order, so kubeadm
    reads the ConfigMap as one it generated."""
    digest = hashlib.sha256()
    for key in sorted(config_map.get("data") or {}):
        digest.update(config_map["data"][key].encode())
    annotations = config_map["metadata"].setdefault("annotations", {})
    annotations["kubeadm.kubernetes.io/component-config.hash"] = f"sha256:{digest.hexdigest()}"
    return config_map


def join_config_maps(spec: ClusterSpec, ca_bundle: bytes) -> list[Json]:
    """kubeadm-config and kubelet-config (kube-system), then cluster-info (kube-public) last:
    once it exists, joining can go on."""
    return [
        _config_map(
            "kube-system", "kubeadm-config", {"ClusterConfiguration": cluster_configuration(spec)}
        ),
        signed(
            _config_map("kube-system", "kubelet-config", {"kubelet": kubelet_configuration(spec)})
        ),
        cluster_info(join_endpoint(spec), ca_bundle),
    ]


def _subject(kind: str, name: str) -> Json:
    return {"apiGroup": RBAC, "kind": kind, "name": name}


def _binding(kind: str, name: str, role: str, subjects: list[Json], ns: str = "") -> Json:
    """A ClusterRoleBinding (to a ClusterRole) or, with `ns`, a RoleBinding (to a Role)."""
    meta: Json = {"name": name, **({"namespace": ns} if ns else {})}
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": "Role" if ns else "ClusterRole", "name": role},
        "subjects": subjects,
    }


def _cluster_role_binding(name: str, role: str, subject: Json) -> Json:
    return _binding("ClusterRoleBinding", name, role, [subject])


def _get_config_map_role(ns: str, name: str, config_map: str, subjects: list[Json]) -> list[Json]:
    """A Role allowing get on one ConfigMap, and its RoleBinding (same name), as kubeadm's."""
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": ns},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [config_map],
                "verbs": ["get"],
            }
        ],
    }
    return [role, _binding("RoleBinding", name, name, subjects, ns)]


def rbac_objects() -> list[Json]:
    """kubeadm's RBAC for joining nodes (phases bootstraptoken/node, uploadconfig, kubelet and
    bootstraptoken/clusterinfo, addons/proxy): bootstrappers may post CSRs, get nodes and read the
    kubeadm-config, kubelet-config and kube-proxy ConfigMaps; their CSRs and nodes' renewals are
    auto-approved; anonymous may get only cluster-info (which matters only while anonymous
    requests are allowed at all)."""
    bootstrappers, nodes = _subject("Group", TOKEN_GROUP), _subject("Group", NODES_GROUP)
    get_nodes = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "kubeadm:get-nodes"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
    }
    csrs = "system:certificates.k8s.io:certificatesigningrequests"
    return [
        _cluster_role_binding(
            "kubeadm:kubelet-bootstrap", "system:node-bootstrapper", bootstrappers
        ),
        get_nodes,
        _cluster_role_binding("kubeadm:get-nodes", "kubeadm:get-nodes", bootstrappers),
        _cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap", f"{csrs}:nodeclient", bootstrappers
        ),
        _cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation", f"{csrs}:selfnodeclient", nodes
        ),
        *_get_config_map_role(
            "kube-system", "kubeadm:nodes-kubeadm-config", "kubeadm-config", [bootstrappers, nodes]
        ),
        *_get_config_map_role(
            "kube-system", "kubeadm:kubelet-config", "kubelet-config", [bootstrappers, nodes]
        ),
        *_get_config_map_role("kube-system", "kube-proxy", "kube-proxy", [bootstrappers]),
        *_get_config_map_role(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "cluster-info",
            [_subject("User", "system:anonymous")],
        ),
    ]


_PLURALS = {
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
}


def collection_path(obj: Json) -> str:
    """Where to POST `obj` (the kinds this module makes)."""
    group_version = obj["apiVersion"]
    base = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    ns = obj["metadata"].get("namespace")
    scope = f"/namespaces/{ns}" if ns else ""
    return f"{base}{scope}/{_PLURALS[obj['kind']]}"


def apply(spec: ClusterSpec, objects: Iterable[Json], api: Api) -> None:
    """Create each object; one that exists is kept, except that a ConfigMap's keys are updated
    (other keys, like the bootstrapsigner's signatures, stay). Raises RuntimeError naming the
    object and the apiserver's answer."""
    for obj in objects:
        path = collection_path(obj)
        status, body = api(spec, path, method="POST", body=obj)
        if status == 409 and obj["kind"] == "ConfigMap":
            status, body = _update_config_map(spec, path, obj, api)
        if status not in (200, 201, 409):
            name = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
            raise RuntimeError(f"creating {name.replace(' /', ' ')} gave HTTP {status}: {body!r}")


def _update_config_map(spec: ClusterSpec, path: str, obj: Json, api: Api) -> tuple[int, bytes]:
    url = f"{path}/{obj['metadata']['name']}"
    status, body = api(spec, url)
    if status != 200:
        return status, body
    current = json.loads(body)
    current.setdefault("data", {}).update(obj["data"])
    annotations = obj["metadata"].get("annotations")
    if annotations:
        current["metadata"].setdefault("annotations", {}).update(annotations)
    return api(spec, url, method="PUT", body=current)


def apiserver_kubelet_client_binding() -> Json:
    """The apiserver's kubelet client (user kube-apiserver) may call nodes' :10250 API."""
    return _cluster_role_binding(
        "pykubelet:kube-apiserver-kubelet-api-admin",
        "system:kubelet-api-admin",
        _subject("User", "kube-apiserver"),
    )


def ca_bundle(spec: ClusterSpec) -> bytes:
    """The CAs joining nodes trust (cluster-info, then their /etc/kubernetes/pki/ca.crt): the
    apiserver's serving CA, and the client CA that signed the apiserver's kubelet client
    certificate (kubeadm has one CA for both; this harness keeps two)."""
    return b"".join((spec.pki / f"{ca}.crt").read_bytes() for ca in ("server-ca", "client-ca"))


def join_command_path(spec: ClusterSpec) -> Path:
    return spec.directory / "join-command"


def make_joinable(spec: ClusterSpec, api: Api, *, now: datetime.datetime) -> str:
    """A new bootstrap token and the objects `kubeadm join` reads; the join command (also kept
    in <dir>/join-command, mode 0600: it holds the token)."""
    token = new_token()
    apply(spec, [token_secret(token, now=now), *join_config_maps(spec, ca_bundle(spec))], api)
    server_ca = (spec.pki / "server-ca.crt").read_bytes()
    command = join_command(join_endpoint(spec), token, ca_cert_hash(server_ca))
    path = join_command_path(spec)
    path.write_text("")
    path.chmod(0o600)
    path.write_text(command + "\n")
    return command
