"""The cluster side of `make vagrant-test`: the host's control plane (cluster/, made joinable and
advertised on the VM bridge), kubectl as the admin, and the manifests the checks apply.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from cluster import up as cluster
from cluster.spec import ClusterSpec, Ports, free_ports

Json = dict[str, Any]


class KubeError(RuntimeError):
    """kubectl failed or an object did not reach the state a check waits for."""


def control_plane(directory: Path, advertise: str) -> ClusterSpec:
    """etcd, apiserver, controller-manager and scheduler on this host, joinable, reachable from
    the VMs at `advertise`; no node agent, no containerd and no add-ons here (the VMs are the
    nodes)."""
    binaries = cluster.find_binaries()
    spec = cluster.make_spec(
        directory,
        binaries,
        ports=Ports(*free_ports(6)),
        node_names=(),
        advertise_address=advertise,
        joinable=True,
    )
    cluster.up(spec, with_containerd=False, with_nodes=False, with_addons=False)
    return spec


class Kubectl:
    """kubectl with the cluster's admin kubeconfig."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.binary = str(spec.binaries.k8s("kubectl"))
        self.kubeconfig = str(spec.admin_kubeconfig)

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        r = subprocess.run(
            [self.binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if r.returncode != 0:
            raise KubeError(f"kubectl {' '.join(args)[:200]}: {r.stderr.strip()[-800:]}")
        return r.stdout

    def json(self, *args: str) -> Json:
        out: Json = json.loads(self.run(*args, "-o", "json"))
        return out

    def apply(self, *docs: Json) -> None:
        self.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def wait(self, what: str, probe: Any, timeout: float, every: float = 3) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = probe()
            except (KubeError, subprocess.SubprocessError, OSError, KeyError, IndexError) as e:
                last = e
            else:
                if last:
                    return last
            time.sleep(every)
        raise KubeError(f"{what}: not within {timeout:.0f}s (last: {str(last)[-500:]})")

    def ready_nodes(self) -> list[str]:
        out = []
        for node in self.json("get", "nodes")["items"]:
            for c in node["status"].get("conditions", []):
                if c["type"] == "Ready" and c["status"] == "True":
                    out.append(node["metadata"]["name"])
        return sorted(out)

    def pods(self, selector: str, namespace: str = "default") -> list[Json]:
        items: list[Json] = self.json("get", "pods", "-n", namespace, "-l", selector)["items"]
        return items


def web_deployment(image: str, replicas: int) -> list[Json]:
    """busybox httpd pods that answer with their own name, spread over the nodes by hostname,
    each with a preStop hook and a grace period (the shutdown check reads them back), and a
    NodePort Service in front of them."""
    labels = {"app": "web"}
    script = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"
    container = {
        "name": "httpd",
        "image": image,
        "command": ["sh", "-c", script],
        "ports": [{"containerPort": 80}],
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 2"]}}},
    }
    spread = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": labels},
    }
    pod_spec = {
        "containers": [container],
        "terminationGracePeriodSeconds": 10,
        "topologySpreadConstraints": [spread],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "NodePort",
            "selector": labels,
            "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
        },
    }
    return [deployment, service]


def resource_pod(name: str, node: str, image: str, resources: Json, command: str) -> Json:
    """One pod pinned to `node` with the given container resources."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"check": name}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": image,
                    "command": ["sh", "-c", command],
                    "resources": resources,
                }
            ],
        },
    }
