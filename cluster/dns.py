"""Cluster DNS as `pykubelet up` deploys it: CoreDNS's Corefile and manifests in upstream's addon
shape (Deployment `coredns`, Service `kube-dns`, RBAC), the clusterDNS address, and a minimal DNS
client to check it answers. Pure data and functions: nothing here talks to the apiserver.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOMOD = Path(__file__).parent / "gobuild" / "coredns" / "go.mod"
DOMAIN = "cluster.local"
NAMESPACE = "kube-system"
APP_LABEL = {"k8s-app": "kube-dns"}
DNS_SERVICE_OFFSET = 10
"""clusterDNS is the 10th address of the Service CIDR, as kubeadm makes it (10.96.0.10); the
apiserver keeps the low end of the range for addresses asked for explicitly."""
SYSTEMD_RESOLVED_STUB = "127.0.0.53"
SYSTEMD_RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")

Json = dict[str, Any]


def coredns_version(gomod: str | None = None) -> str:
    """The CoreDNS version the wrapper module pins (`require github.com/coredns/coredns vX`)."""
    text = gomod if gomod is not None else GOMOD.read_text()
    m = re.search(r"^require github\.com/coredns/coredns (v[0-9][0-9.]*)$", text, re.M)
    if not m:
        raise ValueError(f"{GOMOD}: no `require github.com/coredns/coredns vX.Y.Z` line")
    return m.group(1)


def coredns_image(version: str | None = None) -> str:
    return f"registry.k8s.io/coredns/coredns:{version or coredns_version()}"


def service_ip(service_cidr: str) -> str:
    """The clusterDNS address inside `service_cidr`; refuses a range too small to hold it."""
    net = ipaddress.ip_network(service_cidr, strict=False)
    if net.num_addresses <= DNS_SERVICE_OFFSET + 1:
        raise ValueError(f"service CIDR {service_cidr}: too small for a DNS address")
    return str(net.network_address + DNS_SERVICE_OFFSET)


def resolv_conf_for_pods(etc_resolv_conf: str, *, resolved_upstream_exists: bool) -> str | None:
    """The KubeletConfiguration `resolvConf` to write, or None for the default /etc/resolv.conf.
    Like kubeadm: where /etc/resolv.conf names systemd-resolved's loopback stub, pods (and
    CoreDNS's `forward`, which would otherwise forward to itself and stop on `loop`) get the
    real upstreams from /run/systemd/resolve/resolv.conf."""
    stub = any(
        line.split()[1:2] == [SYSTEMD_RESOLVED_STUB]
        for line in etc_resolv_conf.splitlines()
        if line.startswith("nameserver")
    )
    return str(SYSTEMD_RESOLVED_UPSTREAM) if stub and resolved_upstream_exists else None


def agent_config_lines(
    service_cidr: str, *, etc_resolv_conf: Path = Path("/etc/resolv.conf")
) -> list[str]:
    """KubeletConfiguration lines for cluster DNS: clusterDNS, clusterDomain, resolvConf."""
    lines = [f"clusterDNS: [{service_ip(service_cidr)}]", f"clusterDomain: {DOMAIN}"]
    try:
        text = etc_resolv_conf.read_text()
    except OSError:
        text = ""
    resolv = resolv_conf_for_pods(text, resolved_upstream_exists=SYSTEMD_RESOLVED_UPSTREAM.exists())
    if resolv:
        lines.append(f"resolvConf: {resolv}")
    return lines


# ---- CoreDNS -----------------------------------------------------------------------------------
def corefile(domain: str = DOMAIN) -> str:
    """Upstream's addon Corefile: cluster names answered from the API, everything else forwarded
    to the node's resolv.conf (the pod runs with dnsPolicy Default)."""
    return (
        ".:53 {\n"
        "    errors\n"
        "    health {\n"
        "        lameduck 5s\n"
        "    }\n"
        "    ready\n"
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "        ttl 30\n"
        "    }\n"
        "    prometheus :9153\n"
        "    forward . /etc/resolv.conf {\n"
        "        max_concurrent 1000\n"
        "    }\n"
        "    cache 30\n"
        "    loop\n"
        "    reload\n"
        "    loadbalance\n"
        "}\n"
    )


def _meta(name: str, **extra: Any) -> Json:
    return {"name": name, "namespace": NAMESPACE, **extra}


def rbac() -> list[Json]:
    """ServiceAccount coredns, ClusterRole and ClusterRoleBinding system:coredns."""
    rb = "rbac.authorization.k8s.io/v1"
    bootstrapping = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("coredns")},
        {
            "apiVersion": rb,
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns", "labels": bootstrapping},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": rb,
            "kind": "ClusterRoleBinding",
            "metadata": {
                "name": "system:coredns",
                "labels": bootstrapping,
                "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
            },
            "roleRef": {
                "apiGroup": rb.split("/")[0],
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}],
        },
    ]


def config_map(domain: str = DOMAIN) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("coredns"),
        "data": {"Corefile": corefile(domain)},
    }


def _container(image: str) -> Json:
    def probe(path: str, port: int, **extra: int) -> Json:
        return {"httpGet": {"path": path, "port": port, "scheme": "HTTP"}, **extra}

    return {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "resources": {
            "limits": {"memory": "170Mi"},
            "requests": {"cpu": "100m", "memory": "70Mi"},
        },
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "livenessProbe": probe(
            "/health",
            8080,
            initialDelaySeconds=60,
            timeoutSeconds=5,
            successThreshold=1,
            failureThreshold=5,
        ),
        "readinessProbe": probe("/ready", 8181),
    }


def deployment(image: str, *, replicas: int = 2) -> Json:
    """Deployment coredns (label k8s-app=kube-dns), spread over nodes where it can be."""
    spread = {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {
                "matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]
            },
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("coredns", labels=dict(APP_LABEL)),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": dict(APP_LABEL)},
            "template": {
                "metadata": {"labels": dict(APP_LABEL)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [spread]
                        }
                    },
                    "containers": [_container(image)],
                    "dnsPolicy": "Default",
                    "volumes": [
                        {
                            "name": "config-volume",
                            "configMap": {
                                "name": "coredns",
                                "items": [{"key": "Corefile", "path": "Corefile"}],
                            },
                        }
                    ],
                },
            },
        },
    }


def service(cluster_ip: str) -> Json:
    """Service kube-dns at the clusterDNS address: ports dns, dns-tcp and metrics."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            "kube-dns",
            labels={
                **APP_LABEL,
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
            annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
        ),
        "spec": {
            "selector": dict(APP_LABEL),
            "clusterIP": cluster_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }


def manifests(image: str, cluster_ip: str, *, replicas: int, domain: str = DOMAIN) -> list[Json]:
    """Every object of the addon, in the order to create them."""
    return [*rbac(), config_map(domain), deployment(image, replicas=replicas), service(cluster_ip)]


def api_path(obj: Json) -> str:
    """The collection URL an object is created in (the kinds above only)."""
    kind, meta = obj["kind"], obj["metadata"]
    plural = {
        "ServiceAccount": "serviceaccounts",
        "ConfigMap": "configmaps",
        "Service": "services",
        "Deployment": "deployments",
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
    }[kind]
    group = obj["apiVersion"]
    base = "/api/v1" if group == "v1" else f"/apis/{group}"
    ns = meta.get("namespace")
    return f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}"


# ---- a minimal DNS client (readiness checks) ---------------------------------------------------
TYPE_A = 1


@dataclass(frozen=True)
class Answer:
    """What a server said: its rcode (0 NOERROR, 3 NXDOMAIN...) and the A records' addresses."""

    rcode: int
    addresses: tuple[str, ...]


def query(name: str, *, qtype: int = TYPE_A, ident: int | None = None) -> bytes:
    """One recursion-desired question for `name` (a DNS message, RFC 1035 4.1)."""
    ident = secrets.randbelow(1 << 16) if ident is None else ident
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split(".") if p)
    return header + labels + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            return pos + 2
        if n == 0:
            return pos + 1
        pos += n + 1


def parse_answer(msg: bytes, *, ident: int | None = None) -> Answer:
    """The rcode and A addresses of a reply; ValueError for a truncated or foreign message."""
    if len(msg) < 12:
        raise ValueError("DNS reply shorter than its header")
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if ident is not None and rid != ident:
        raise ValueError(f"DNS reply id {rid} does not match query id {ident}")
    if not flags & 0x8000:
        raise ValueError("DNS message is not a reply")
    try:
        pos = 12
        for _ in range(qd):
            pos = _skip_name(msg, pos) + 4
        found = []
        for _ in range(an):
            pos = _skip_name(msg, pos)
            rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[pos : pos + 10])
            pos += 10
            if pos + rdlen > len(msg):
                raise IndexError(f"record data of {rdlen} bytes past the end")
            if rtype == TYPE_A and rdlen == 4:
                found.append(str(ipaddress.IPv4Address(msg[pos : pos + 4])))
            pos += rdlen
    except (IndexError, struct.error) as e:
        raise ValueError(f"truncated DNS reply: {e}") from None
    return Answer(rcode=flags & 0xF, addresses=tuple(found))
