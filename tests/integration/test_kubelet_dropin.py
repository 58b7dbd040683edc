"""The `kubelet` console script started the way kubeadm's systemd drop-in starts the Go kubelet
(10-kubeadm.conf's flags, kubeadm-flags.env's, kubeadm's own config.yaml with its paths pointed
at the test cluster, plus a --config-dir drop-in): the Node goes Ready, GET /healthz on
healthzPort says ok, and kubeadm's file gives no warnings.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec, free_ports

from .conftest import NODE

KUBEADM_CONFIG = (
    Path(__file__).parents[1] / "unit/kubelet/config/fixtures/kubeadm-v1.36.3-config.yaml"
)
KUBELET = Path(sys.executable).parent / "kubelet"


def _ready(spec: ClusterSpec) -> bool:
    status, body = cluster.api(spec, f"/api/v1/nodes/{NODE}")
    conditions = json.loads(body).get("status", {}).get("conditions", []) if status == 200 else []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def _wait(pred: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout}s")


def _config_yaml(spec: ClusterSpec, static_pods: Path) -> str:
    """kubeadm's config.yaml, with what points at the machine changed for this cluster."""
    doc = yaml.safe_load(KUBEADM_CONFIG.read_text())
    doc["authentication"]["x509"]["clientCAFile"] = str(spec.pki / "client-ca.crt")
    doc["containerRuntimeEndpoint"] = f"unix://{spec.containerd_socket}"
    doc["cgroupDriver"] = "cgroupfs"  # no systemd as PID 1 here (the runtime uses cgroupfs)
    doc["staticPodPath"] = str(static_pods)
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def kubelet(cluster_spec: ClusterSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The drop-in kubelet as the cluster's node; yields its healthzPort."""
    assert KUBELET.exists(), f"{KUBELET}: the kubelet console script is not installed"
    root = tmp_path_factory.mktemp("kubelet-dropin")
    (root / "manifests").mkdir()
    config = root / "config.yaml"
    config.write_text(_config_yaml(cluster_spec, root / "manifests"))
    healthz_port = free_ports(1)[0]
    dropins = root / "kubelet.conf.d"
    dropins.mkdir()
    (dropins / "90-test-cluster.conf").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "port": cluster_spec.ports.kubelet,
                "healthzPort": healthz_port,
                "cgroupRoot": cluster.cgroup_root(cluster_spec),
                "podLogsDir": str(root / "pod-logs"),
                "imageGCHighThresholdPercent": 100,  # no registry to pull collected images from
            }
        )
    )
    kubeadm_flags = f"--hostname-override={NODE} --node-ip=127.0.0.1"
    command = [
        str(KUBELET),
        # KUBELET_KUBECONFIG_ARGS, KUBELET_CONFIG_ARGS (10-kubeadm.conf)
        f"--bootstrap-kubeconfig={root / 'bootstrap-kubelet.conf'}",
        f"--kubeconfig={cluster_spec.kubeconfig('node-' + NODE)}",
        f"--config={config}",
        # KUBELET_KUBEADM_ARGS (kubeadm-flags.env)
        *kubeadm_flags.split(),
        # KUBELET_EXTRA_ARGS (/etc/default/kubelet): keep state in the test's directory
        f"--config-dir={dropins}",
        f"--root-dir={root / 'root'}",
        f"--cert-dir={root / 'pki'}",
    ]
    daemon = cluster.daemon(cluster_spec, "kubelet-dropin")
    process.start(daemon, command, env=cluster.agent_network_env(cluster_spec))
    try:
        yield healthz_port
    finally:
        process.stop(daemon)
        cluster.api(cluster_spec, f"/api/v1/nodes/{NODE}", method="DELETE")


def test_node_ready_and_healthz_ok(cluster_spec: ClusterSpec, kubelet: int) -> None:
    log = cluster.daemon(cluster_spec, "kubelet-dropin").log_file
    try:
        ready = _wait(lambda: _ready(cluster_spec), 60, "Node Ready")
        healthy = _wait(lambda: _healthz(kubelet) == (200, "ok"), 30, "/healthz ok")
    except AssertionError:
        print(log.read_text()[-4000:])
        raise
    print(f"drop-in kubelet: Node Ready after {ready:.1f}s, /healthz ok {healthy:.1f}s later")
    text = log.read_text()
    assert "not implemented by pykubelet" not in text, text
    assert "unknown field" not in text, text


def test_healthz_says_why_when_unhealthy_over_plain_http(kubelet: int) -> None:
    status, body = _healthz(kubelet)
    assert (status, body) == (200, "ok")
    with urllib.request.urlopen(f"http://127.0.0.1:{kubelet}/healthz?verbose", timeout=2) as r:
        assert r.read().decode() == "[+]ping ok\n[+]syncloop ok\nhealthz check passed\n"
