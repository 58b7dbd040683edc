"""Container log rotation on a real node: a chatty busybox pod's log is rotated, compressed and
bounded while `kubectl logs` (plain and -f) keeps working; /metrics shows the agent's histograms.
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster import process
from cluster import up as cluster
from cluster.http import request
from cluster.spec import ClusterSpec

from .conftest import NODE
from .podutil import (
    api_json,
    container,
    create_pod,
    cstatus,
    new_namespace,
    pod_body,
    wait_for,
    wait_pod,
)

MAX_FILES = 3
ROTATED = re.compile(r"^0\.log\.\d{8}-\d{6}(\.gz)?$")
LINE = re.compile(rb"line-(\d+) ")
# About 5 KB/s of log: 16 KiB is passed between any two of the agent's 10 s checks.
CHATTY = (
    "pad=$(printf '%080d' 0); i=0; while true; do echo \"line-$i $pad\"; i=$((i+1)); "
    "[ $((i % 20)) -eq 0 ] && sleep 0.5; done"
)


@dataclass(frozen=True)
class Node:
    spec: ClusterSpec
    ns: str

    def kubectl(self, *args: str) -> list[str]:
        kubectl = cluster.find_binaries(build=False).k8s("kubectl")
        return [str(kubectl), "-n", self.ns, *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.spec.admin_kubeconfig)}

    def logs(self, *args: str) -> bytes:
        r = subprocess.run(self.kubectl("logs", *args), capture_output=True, env=self.env())
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout


@pytest.fixture(scope="module")
def node(cluster_spec: ClusterSpec) -> Iterator[Node]:
    """Our own agent with small log limits (the `ns` fixture's agent keeps the defaults)."""
    spec = cluster_spec
    cluster.start_node(
        spec, NODE, extra=f"containerLogMaxSize: 16Ki\ncontainerLogMaxFiles: {MAX_FILES}"
    )
    namespace = new_namespace(spec)
    try:
        yield Node(spec, namespace)
    finally:
        cluster.api(
            spec, f"/api/v1/namespaces/{namespace}/pods?gracePeriodSeconds=0", method="DELETE"
        )
        wait_for(
            lambda: not api_json(spec, f"/api/v1/namespaces/{namespace}/pods")["items"],
            30,
            "pods gone",
        )
        process.stop(cluster.agent_daemon(spec, NODE))


def _log_dir(node: Node, pod: dict[str, object]) -> Path:
    meta = pod["metadata"]
    assert isinstance(meta, dict)
    return node.spec.directory / "pod-logs" / f"{node.ns}_{meta['name']}_{meta['uid']}" / "c"


def _rotated(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if ROTATED.match(n))


def _generations(directory: Path) -> set[str]:
    """Distinct files, a compression in progress (x, x.tmp, x.gz) counted once."""
    return {n.removesuffix(".tmp").removesuffix(".gz") for n in os.listdir(directory)}


def _numbers(data: bytes) -> list[int]:
    return [int(m.group(1)) for m in LINE.finditer(data)]


def _follow(node: Node, name: str, seconds: float) -> bytes:
    """`kubectl logs -f` for a while; what it printed."""
    proc = subprocess.Popen(
        node.kubectl("logs", "-f", "--tail=1", name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=node.env(),
    )
    out = bytearray()

    def read() -> None:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            out.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(seconds)
    proc.terminate()
    proc.wait(10)
    reader.join(10)
    return bytes(out)


def test_rotation_compresses_bounds_and_logs_still_work(node: Node) -> None:
    create_pod(node.spec, node.ns, pod_body("chatty", [container("c", CHATTY)], grace=1))
    pod = wait_pod(
        node.spec,
        node.ns,
        "chatty",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    directory = _log_dir(node, pod)
    wait_for(lambda: (directory / "0.log").exists(), 30, "log file")

    # -f across at least two rotations: every line, in order, none lost or doubled.
    followed = _numbers(_follow(node, "chatty", 25))
    assert len(followed) > 16 * 1024 // 100 * 2, f"only {len(followed)} lines followed"
    gaps = [(a, b) for a, b in itertools.pairwise(followed) if b != a + 1]
    assert not gaps, f"follow lost or repeated lines at {gaps[:5]}"

    wait_for(lambda: any(n.endswith(".gz") for n in _rotated(directory)), 40, "a compressed log")
    wait_for(lambda: len(_rotated(directory)) >= MAX_FILES - 1, 40, "rotated files")
    for _ in range(30):  # the bound holds round after round
        gens = _generations(directory)
        assert len(gens) <= MAX_FILES, sorted(os.listdir(directory))
        time.sleep(0.5)
    others = [n for n in os.listdir(directory) if n != "0.log" and not n.endswith(".tmp")]
    assert all(ROTATED.match(n) for n in others), others
    assert (directory / "0.log").stat().st_size < 256 * 1024
    newest_rotated = wait_for(lambda: _check_rotated(directory), 30, "rotated files readable")

    # kubectl logs reads the live file: recent lines, after the newest rotated one.
    recent = _numbers(node.logs("--tail=5", "chatty"))
    assert len(recent) == 5
    assert recent[0] > newest_rotated[-1]


def _check_rotated(directory: Path) -> list[int] | None:
    """The compressed file holds real, older log lines; the newest rotated one is not compressed.
    The newest rotated file's line numbers; None if a rotation moved the files meanwhile."""
    names = _rotated(directory)
    gz = [n for n in names if n.endswith(".gz")]
    plain = [n for n in names if not n.endswith(".gz")]
    if not gz or not plain:
        return None  # between a compression and the rename of the live log
    assert plain[-1] > gz[-1].removesuffix(".gz"), names
    try:
        old = _numbers(gzip.decompress((directory / gz[-1]).read_bytes()))
        newest = _numbers((directory / plain[-1]).read_bytes())
    except FileNotFoundError:
        return None
    assert old and newest and old[-1] < newest[0]
    return newest


def test_metrics_show_agent_histograms(node: Node) -> None:
    create_pod(node.spec, node.ns, pod_body("quiet", [container("c", "sleep 3600")], grace=1))
    wait_pod(
        node.spec,
        node.ns,
        "quiet",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    time.sleep(2)
    pki = node.spec.pki
    r = request(
        f"https://127.0.0.1:{node.spec.ports.kubelet}/metrics",
        cert=(pki / "admin.crt", pki / "admin.key"),
        timeout=10,
    )
    assert r.status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(r.body.decode())
        for s in f.samples
    }

    def count(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert count("kubelet_pod_worker_duration_seconds_count", operation_type="create") >= 1
    assert count("kubelet_pod_worker_duration_seconds_count", operation_type="sync") >= 1
    assert count("kubelet_pod_start_duration_seconds_count") >= 1
    assert count("kubelet_pod_start_sli_duration_seconds_count") >= 1
    assert count("kubelet_pleg_relist_duration_seconds_count") >= 1
    for op in ("list_containers", "container_status", "run_podsandbox", "reopen_container_log"):
        assert count("kubelet_runtime_operations_duration_seconds_count", operation_type=op) >= 1
        assert count("kubelet_runtime_operations_total", operation_type=op) >= 1
    assert "# TYPE kubelet_runtime_operations_errors_total counter" in r.body.decode()
    errors = [v for (n, _), v in samples.items() if n == "kubelet_runtime_operations_errors_total"]
    assert all(v >= 0 for v in errors)
