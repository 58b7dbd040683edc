"""Helpers for multi-node tests: a cluster of simulated nodes (the code of `up --nodes N`),
pods pinned to a node, and commands run inside a node's netns or a pod's container."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cluster import nodes
from cluster import up as cluster
from cluster.spec import ClusterSpec, Ports, free_ports

from .podutil import BUSYBOX, api_json, get_pod, wait_for

Json = dict[str, Any]


@contextmanager
def multinode_cluster(
    directory: Path,
    names: tuple[str, ...],
    *,
    route_mode: str = "host-gw",
    proxy_mode: str = "iptables",
    tag: str = "pkm",
) -> Iterator[ClusterSpec]:
    """A control plane plus simulated nodes; per-pid netns names, segment, cgroup root (named
    after the bridge) and pod CIDR, so sessions can run side by side."""
    pid = os.getpid()
    spec = cluster.make_spec(
        directory,
        cluster.find_binaries(build=False),
        ports=Ports(*free_ports(6)),
        node_names=names,
        bridge=f"{tag}{pid % 100000}",
        cluster_cidr=f"10.{100 + (pid + 75) % 150}.0.0/16",
        node_subnet=f"198.19.{pid % 256}.0/24",
        netns_prefix=f"{tag}{pid % 100000}",
        route_mode=route_mode,
        proxy_mode=proxy_mode,
    )
    try:
        cluster.up(spec, with_addons=False)  # the tests here count pods and rules: no CoreDNS
        yield spec
    finally:
        cluster.down(directory)


def sim(spec: ClusterSpec, name: str) -> nodes.SimNode:
    return next(n for n in nodes.sim_nodes(spec) if n.name == name)


def in_node(node: nodes.SimNode, *args: str, timeout: float = 30) -> str:
    r = subprocess.run(
        ["nsenter", f"--net={node.netns_path}", "--", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise RuntimeError(f"{node.name}: {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r.stdout


def crictl(spec: ClusterSpec, node: nodes.SimNode, *args: str) -> str:
    """crictl against the node's containerd, from inside the node's netns (its streaming
    server listens on the node's loopback)."""
    assert spec.binaries.crictl is not None
    return in_node(
        node,
        str(spec.binaries.crictl),
        "--runtime-endpoint",
        f"unix://{node.containerd_socket}",
        *args,
    )


def pod(
    name: str,
    node: str,
    script: str,
    *,
    host_network: bool = False,
    ports: list[Json] | None = None,
) -> Json:
    c: Json = {
        "name": "c",
        "image": BUSYBOX,
        "command": ["sh", "-c", script],
        "imagePullPolicy": "IfNotPresent",
    }
    if ports:
        c["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "hostNetwork": host_network,
            "containers": [c],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
        },
    }


def running(spec: ClusterSpec, ns: str, name: str, timeout: float = 60) -> Json:
    def check() -> Json | None:
        p = get_pod(spec, ns, name)
        if p is None or p.get("status", {}).get("phase") != "Running":
            return None
        return p if p["status"].get("podIP") else None

    result: Json = wait_for(check, timeout, f"pod {ns}/{name} Running with an IP", 0.2)
    return result


def container_id(p: Json) -> str:
    return str(p["status"]["containerStatuses"][0]["containerID"]).split("://", 1)[1]


def sandbox_netns(spec: ClusterSpec, node: nodes.SimNode, p: Json) -> str:
    """The pod sandbox's netns path, from the node's CRI (PodSandboxStatus info)."""
    uid = p["metadata"]["uid"]
    ids = crictl(spec, node, "pods", "-q", "--label", f"io.kubernetes.pod.uid={uid}").split()
    info = json.loads(crictl(spec, node, "inspectp", ids[0]))["info"]
    for n in info["runtimeSpec"]["linux"]["namespaces"]:
        if n.get("type") == "network":
            return str(n["path"])
    raise AssertionError(f"no network namespace for pod {p['metadata']['name']}")


def delete_all_pods(spec: ClusterSpec, ns: str, timeout: float = 120) -> None:
    cluster.api(spec, f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0", method="DELETE")
    wait_for(
        lambda: not api_json(spec, f"/api/v1/namespaces/{ns}/pods")["items"],
        timeout,
        "pods gone",
        0.5,
    )
