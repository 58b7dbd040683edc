"""The node's :10250 API through the real apiserver as users meet it: kubectl logs/exec/cp/
port-forward, and direct requests for authentication, authorization, metrics and bad input.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster import pki, process
from cluster import up as cluster
from cluster.http import Response, request
from cluster.spec import ClusterSpec

from .conftest import NODE
from .podutil import Json, container, create_pod, cstatus, new_namespace, pod_body, wait_pod

LINES = "i=0; while [ $i -lt 5 ]; do echo line-$i; i=$((i+1)); done"


@dataclass(frozen=True)
class Node:
    spec: ClusterSpec
    ns: str
    port: int

    def kubectl(
        self, *args: str, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        kubectl = cluster.find_binaries(build=False).k8s("kubectl")
        env = {**os.environ, "KUBECONFIG": str(self.spec.admin_kubeconfig)}
        return subprocess.run(
            [str(kubectl), "-n", self.ns, *args],
            input=input,
            capture_output=True,
            env=env,
            timeout=timeout,
        )

    def ok(self, *args: str, input: bytes | None = None) -> str:
        r = self.kubectl(*args, input=input)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr.decode()}"
        return r.stdout.decode()

    def direct(
        self, path: str, who: str | None = "admin", pair: tuple[Path, Path] | None = None
    ) -> Response:
        pki_dir = self.spec.pki
        cert = pair or ((pki_dir / f"{who}.crt", pki_dir / f"{who}.key") if who else None)
        return request(f"https://127.0.0.1:{self.port}{path}", cert=cert, timeout=10)


@pytest.fixture(scope="module")
def node(cluster_spec: ClusterSpec) -> Iterator[Node]:
    """The agent as the harness runs it: x509 client-CA authentication and webhook
    authorization, on the cluster's kubelet port."""
    spec = cluster_spec
    cluster.start_node(spec, NODE)
    try:
        yield Node(spec, new_namespace(spec), spec.ports.kubelet)
    finally:
        process.stop(cluster.agent_daemon(spec, NODE))


def _running(n: Node, name: str, script: str, *, restart: str = "Always") -> Json:
    create_pod(n.spec, n.ns, pod_body(name, [container("c", script)], restart=restart, grace=1))
    return wait_pod(
        n.spec, n.ns, name, lambda p: "running" in cstatus(p, "c").get("state", {}), 60, "running"
    )


def test_logs_plain_tail_timestamps(node: Node) -> None:
    _running(node, "logs", f"{LINES}; sleep 3600")
    expected = "".join(f"line-{i}\n" for i in range(5))
    deadline = time.monotonic() + 10
    while node.ok("logs", "logs") != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert node.ok("logs", "logs") == expected
    assert node.ok("logs", "logs", "--tail=2") == "line-3\nline-4\n"
    stamped = node.ok("logs", "logs", "--timestamps").splitlines()
    assert len(stamped) == 5
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line-\d$", s) for s in stamped)
    assert node.ok("logs", "logs", "--limit-bytes=8") == "line-0\nl"
    assert node.ok("logs", "logs", "--since=1h") == expected
    missing = node.kubectl("logs", "logs", "-c", "nope")
    assert missing.returncode != 0 and b"nope" in missing.stderr


def test_logs_follow_until_exit(node: Node) -> None:
    script = "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.5; done"
    _running(node, "follow", script, restart="Never")
    started = time.monotonic()
    out = node.ok("logs", "-f", "follow")
    assert out == "".join(f"tick-{i}\n" for i in range(1, 7))
    assert time.monotonic() - started < 30


def test_logs_previous_after_restart(node: Node) -> None:
    _running(node, "prev", "echo run-$(cat /proc/uptime); sleep 2; exit 1")
    wait_pod(
        node.spec,
        node.ns,
        "prev",
        lambda p: cstatus(p, "c").get("restartCount", 0) >= 1,
        60,
        "restarted",
    )
    previous = node.ok("logs", "prev", "--previous")
    assert previous.startswith("run-"), previous


def test_exec_exit_code_and_stdin(node: Node) -> None:
    _running(node, "exec", "sleep 3600")
    r = node.kubectl("exec", "exec", "--", "sh", "-c", "echo out; exit 3")
    assert r.returncode == 3 and r.stdout == b"out\n", r.stderr
    assert node.ok("exec", "-i", "exec", "--", "cat", input=b"hello stdin\n") == "hello stdin\n"


def test_cp_both_ways(node: Node, tmp_path: Path) -> None:
    _running(node, "cp", "sleep 3600")
    src = tmp_path / "up.txt"
    src.write_bytes(os.urandom(100_000).hex().encode())
    node.ok("cp", str(src), "cp:/tmp/up.txt")
    node.ok("cp", "cp:/tmp/up.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_bytes() == src.read_bytes()


def test_port_forward_http(node: Node) -> None:
    script = "mkdir -p /www && echo hello-pf > /www/index.html && httpd -f -p 8080 -h /www"
    _running(node, "pf", script)
    kubectl = cluster.find_binaries(build=False).k8s("kubectl")
    env = {**os.environ, "KUBECONFIG": str(node.spec.admin_kubeconfig)}
    proc = subprocess.Popen(
        [str(kubectl), "-n", node.ns, "port-forward", "--address=127.0.0.1", "pod/pf", ":8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert m, line
        url = f"http://127.0.0.1:{m.group(1)}/"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == b"hello-pf\n"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_authentication_and_authorization(node: Node, tmp_path: Path) -> None:
    assert node.direct("/healthz", who=None).status == 401
    assert node.direct("/healthz").status == 200
    ca = pki.KeyPair(
        (node.spec.pki / "client-ca.crt").read_bytes(),
        (node.spec.pki / "client-ca.key").read_bytes(),
    )
    pair = pki.issue(ca, common_name="nobody", client=True)
    pki.write_pair(tmp_path, "nobody", pair)
    files = (tmp_path / "nobody.crt", tmp_path / "nobody.key")
    denied = node.direct("/pods", pair=files)
    assert denied.status == 403 and b"nobody" in denied.body
    # a certificate from another CA does not get past TLS
    other = pki.issue(pki.make_ca("other"), common_name="kubernetes-admin", client=True)
    pki.write_pair(tmp_path, "other", other)
    with pytest.raises((ssl.SSLError, OSError)):
        node.direct("/healthz", pair=(tmp_path / "other.crt", tmp_path / "other.key"))


def test_metrics_stats_pods_configz(node: Node) -> None:
    _running(node, "stats", "sleep 3600")
    text = node.direct("/metrics").body.decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    for want in ("kubelet_running_pods", "kubelet_running_containers", "kubelet_node_name"):
        assert want in names
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["kubelet_running_pods"].samples[0].value >= 1
    res = node.direct("/metrics/resource").body.decode()
    rnames = {f.name for f in text_string_to_metric_families(res)}
    assert {"node_cpu_usage_seconds", "container_memory_working_set_bytes"} <= rnames
    summary = node.direct("/stats/summary").json()
    assert summary["node"]["nodeName"] == NODE
    assert summary["node"]["memory"]["workingSetBytes"] > 0
    refs = {(p["podRef"]["namespace"], p["podRef"]["name"]) for p in summary["pods"]}
    assert (node.ns, "stats") in refs
    pods = node.direct("/pods").json()
    assert pods["kind"] == "PodList" and any(
        p["metadata"]["name"] == "stats" for p in pods["items"]
    )
    assert node.direct("/configz").json()["kubeletconfig"]["port"] == node.port


def test_bad_input_gets_4xx_and_server_stays_healthy(node: Node) -> None:
    _running(node, "bad", "sleep 3600")
    base = f"/containerLogs/{node.ns}/bad/c"
    for query in ("tailLines=-1", "tailLines=x", "limitBytes=0", "sinceSeconds=1&sinceTime=x"):
        r = node.direct(f"{base}?{query}")
        assert r.status == 400, (query, r.status, r.body)
    assert node.direct(f"/containerLogs/{node.ns}/nope/c").status == 404
    assert node.direct(f"/containerLogs/{node.ns}/bad/nope").status == 404
    assert node.direct("/containerLogs/only-ns").status == 404
    assert node.direct("/exec/x/y/z?command=ls").status == 404
    assert node.direct(f"/exec/{node.ns}/bad/c?command=ls&stdin=maybe").status == 400
    status = _raw_status(node.port, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 100_000)
    assert 400 <= status < 500
    status = _raw_status(node.port, b"GARBAGE\x00\x01 / HTTP/9\r\n")
    assert 400 <= status < 500
    assert node.direct("/healthz").status == 200


def _raw_status(port: int, head: bytes) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw) as s,
    ):
        s.sendall(head + b"\r\n\r\n")
        answer = s.recv(4096)
    return int(answer.split(b" ", 2)[1])


def test_attach_streams_output(node: Node) -> None:
    _running(node, "attach", "while true; do echo tick; sleep 0.3; done")
    kubectl = cluster.find_binaries(build=False).k8s("kubectl")
    env = {**os.environ, "KUBECONFIG": str(node.spec.admin_kubeconfig)}
    proc = subprocess.Popen(
        [str(kubectl), "-n", node.ns, "attach", "attach"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"tick\n"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_stats_summary_container_usage_nano_cores(node: Node) -> None:
    """A busy container's usageNanoCores: a rate between two summaries, about one core."""
    _running(node, "busy", "while true; do :; done")

    def busy_cpu() -> Json:
        summary = node.direct("/stats/summary").json()
        for p in summary["pods"]:
            if (p["podRef"]["namespace"], p["podRef"]["name"]) == (node.ns, "busy"):
                cpu: Json = p["containers"][0]["cpu"]
                return cpu
        raise AssertionError("pod busy not in /stats/summary")

    try:
        busy_cpu()
        time.sleep(2)
        cpu = busy_cpu()
        assert "usageNanoCores" in cpu, cpu
        assert 300_000_000 < cpu["usageNanoCores"] < 2_200_000_000, cpu
    finally:  # it burns a core
        node.kubectl("delete", "pod", "busy", "--grace-period=0", "--force")
