"""The node agent as a node: Ready soon after start, Lease renewed about every 10 s, registered
again when its Node is deleted, marked Unknown by the controller once it stops; bad config refused.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec

from .conftest import NODE


def _get(spec: ClusterSpec, path: str) -> dict[str, Any]:
    status, body = cluster.api(spec, path)
    assert status == 200, (path, status, body)
    result: dict[str, Any] = json.loads(body)
    return result


def _ready_status(spec: ClusterSpec) -> str | None:
    status, body = cluster.api(spec, f"/api/v1/nodes/{NODE}")
    if status != 200:
        return None
    for c in json.loads(body).get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return str(c["status"])
    return None


def _wait(pred: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s")


def _renew_time(spec: ClusterSpec) -> datetime.datetime:
    lease = _get(spec, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}")
    return datetime.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))


STARTED: dict[str, float] = {}


@pytest.fixture(scope="module")
def agent(cluster_spec: ClusterSpec) -> Iterator[process.Daemon]:
    STARTED["agent"] = time.monotonic()
    cluster.start_node(cluster_spec, NODE, wait=False)
    d = cluster.agent_daemon(cluster_spec, NODE)
    try:
        yield d
    finally:
        process.stop(d)


def test_node_ready_within_10s(cluster_spec: ClusterSpec, agent: process.Daemon) -> None:
    _wait(lambda: _ready_status(cluster_spec) == "True", 15, "Node Ready")
    took = time.monotonic() - STARTED["agent"]
    assert took < 10, f"Node Ready {took:.1f}s after the agent started"
    node = _get(cluster_spec, f"/api/v1/nodes/{NODE}")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.6")
    assert info["kubeletVersion"].startswith("v1.36.")
    assert (
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == cluster_spec.ports.kubelet
    )
    assert {"cpu", "memory", "pods", "ephemeral-storage"} <= set(node["status"]["capacity"])


def test_lease_renewed_about_every_10s(cluster_spec: ClusterSpec, agent: process.Daemon) -> None:
    _wait(lambda: _ready_status(cluster_spec) == "True", 15, "Node Ready")
    first = _renew_time(cluster_spec)
    _wait(lambda: _renew_time(cluster_spec) != first, 15, "Lease renewal")
    second = _renew_time(cluster_spec)
    _wait(lambda: _renew_time(cluster_spec) != second, 15, "second Lease renewal")
    gap = (_renew_time(cluster_spec) - second).total_seconds()
    assert 8 <= gap <= 13, gap
    lease = _get(
        cluster_spec, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
    )
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"


def test_node_registered_again_after_delete(
    cluster_spec: ClusterSpec, agent: process.Daemon
) -> None:
    _wait(lambda: _ready_status(cluster_spec) == "True", 15, "Node Ready")
    old_uid = _get(cluster_spec, f"/api/v1/nodes/{NODE}")["metadata"]["uid"]
    assert cluster.api(cluster_spec, f"/api/v1/nodes/{NODE}", method="DELETE")[0] == 200

    def recreated() -> bool:
        status, body = cluster.api(cluster_spec, f"/api/v1/nodes/{NODE}")
        return status == 200 and json.loads(body)["metadata"]["uid"] != old_uid

    _wait(recreated, 25, "Node registered again")
    _wait(lambda: _ready_status(cluster_spec) == "True", 15, "re-registered Node Ready")


def test_stopped_agent_makes_node_unknown(cluster_spec: ClusterSpec, agent: process.Daemon) -> None:
    _wait(lambda: _ready_status(cluster_spec) == "True", 15, "Node Ready")
    process.stop(agent)
    took = _wait(lambda: _ready_status(cluster_spec) == "Unknown", 60, "Node Unknown")
    assert took >= 10, f"Node Unknown after only {took:.1f}s: grace period not honoured"


def test_bad_config_value_is_refused(tmp_path: Path) -> None:
    """(An unknown field is only a warning, as upstream's lenient decoding makes it.)"""
    config = tmp_path / "kubelet.yaml"
    config.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfooBar: lots\n"
        "maxPods: lots\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pykubelet.cli",
            "run",
            f"--config={config}",
            "--kubeconfig=/nonexistent",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert "KubeletConfiguration.maxPods: expected an integer" in r.stderr
