"""A default cluster where Services and DNS work (issue 15's acceptance), on the session cluster
with the add-ons `pykubelet up` runs by default (the node's proxy in the root netns, the
apiserver reachable from pods, CoreDNS behind kube-dns): two busybox httpd pods behind Service
`web`, and from a third pod `wget` by name and by ClusterIP and `nslookup kubernetes.default`.
Removing the add-ons leaves none of the proxy's rules in the root netns.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cluster import addons, dns, proxyproc
from cluster import up as cluster
from cluster.spec import ClusterSpec
from net.proxy.cleanup import ours

from .podutil import (
    BUSYBOX,
    api_json,
    container,
    create_pod,
    cstatus,
    pod_body,
    wait_for,
    wait_pod,
)

Json = dict[str, Any]
SERVER = (
    'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && '
    "exec httpd -f -p 80 -h /www"
)


def _proxy_leftovers() -> list[str]:
    """Chains and rules of the proxy in the root netns (iptables and nftables modes)."""
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    found = [
        ln
        for ln in saved.splitlines()
        if (ln.startswith(":") and ours(ln[1:].split()[0]))
        or (ln.startswith("-A") and any(ours(w) for w in ln.split()))
    ]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return found + [t for t in tables.splitlines() if "pykube-proxy" in t]


@pytest.fixture(scope="module")
def services(cluster_spec: ClusterSpec, ns: str) -> Iterator[ClusterSpec]:
    """The add-ons on the session cluster (its fixture starts none), removed afterwards; the
    root netns is then checked for leftovers while no other proxy may start there."""
    t0 = time.monotonic()
    try:
        addons.start(cluster_spec, say=print)
        print(f"add-ons up in {time.monotonic() - t0:.1f}s")
        yield cluster_spec
    finally:
        addons.remove(cluster_spec, say=print)
        with proxyproc.root_netns_lock():
            assert _proxy_leftovers() == []


def _web(spec: ClusterSpec, ns: str) -> str:
    """Deployment web (2 busybox httpd pods on :80) and Service web; returns the ClusterIP
    once both endpoints are ready."""
    labels = {"app": "web"}
    httpd = {
        "name": "httpd",
        "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", SERVER],
        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [httpd], "terminationGracePeriodSeconds": 1},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 80}]},
    }
    api_json(spec, f"/apis/apps/v1/namespaces/{ns}/deployments", method="POST", body=deployment)
    created = api_json(spec, f"/api/v1/namespaces/{ns}/services", method="POST", body=service)

    def ready_endpoints() -> int:
        slices = api_json(
            spec,
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
            "?labelSelector=kubernetes.io%2Fservice-name%3Dweb",
        )["items"]
        return sum(
            1
            for s in slices
            for e in s.get("endpoints") or []
            if e.get("conditions", {}).get("ready")
        )

    wait_for(lambda: ready_endpoints() == 2, 90, "2 ready endpoints of Service web")
    return str(created["spec"]["clusterIP"])


def _retry(cmd: str) -> str:
    """A shell loop running `cmd` until it succeeds (the proxy may still be syncing), 30 s."""
    return f"for i in $(seq 30); do {cmd} && break; sleep 1; done; [ $i -lt 30 ]"


def test_wget_service_by_name_and_cluster_ip_and_nslookup(services: ClusterSpec, ns: str) -> None:
    spec = services
    try:
        ip = _web(spec, ns)
        script = " && ".join(
            [
                _retry(f"wget -qO- -T 3 http://web.{ns}.svc.cluster.local/ > /tmp/by-name"),
                _retry(f"wget -qO- -T 3 http://{ip}/ > /tmp/by-ip"),
                _retry("nslookup kubernetes.default > /tmp/ns"),
                "cat /tmp/by-name /tmp/by-ip /tmp/ns > /dev/termination-log",
            ]
        )
        client = pod_body("client", [container("client", script)], restart="Never", grace=1)
        create_pod(spec, ns, client)

        def done(p: Json) -> bool:
            return "terminated" in cstatus(p, "client").get("state", {})

        pod = wait_pod(spec, ns, "client", done, 120, "client terminated")
        term = cstatus(pod, "client")["state"]["terminated"]
        out = str(term.get("message", ""))
        assert term["exitCode"] == 0, out
        lines = out.splitlines()
        assert lines[0].startswith("hello from web-"), out
        assert lines[1].startswith("hello from web-"), out
        assert f"Server:    {dns.service_ip(spec.service_cidr)}" in lines, out
        assert "Name:      kubernetes.default" in lines, out
        assert any(ln.startswith(f"Address 1: {spec.first_service_ip}") for ln in lines), out
    finally:  # the module's namespace fixture then deletes the pods
        cluster.api(spec, f"/apis/apps/v1/namespaces/{ns}/deployments/web", method="DELETE")
        cluster.api(spec, f"/api/v1/namespaces/{ns}/services/web", method="DELETE")
