"""The agent rides out its dependencies restarting: containerd down makes the node NotReady with
an honest reason and back to Ready after, pods keep running; an apiserver restart is survived.
"""

from __future__ import annotations

import datetime
import json
import time

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec, apiserver_command, containerd_command

from .conftest import NODE
from .podutil import (
    Json,
    container,
    create_pod,
    cstatus,
    get_pod,
    pod_body,
    wait_for,
    wait_pod,
)


def _ready(spec: ClusterSpec) -> tuple[str, str]:
    status, body = cluster.api(spec, f"/api/v1/nodes/{NODE}")
    if status != 200:
        return ("", "")
    for c in json.loads(body)["status"]["conditions"]:
        if c["type"] == "Ready":
            return (c["status"], c.get("message", ""))
    return ("", "")


def _running(pod: Json) -> bool:
    return bool(pod.get("status", {}).get("phase") == "Running")


def test_containerd_restart(cluster_spec: ClusterSpec, ns: str) -> None:
    create_pod(cluster_spec, ns, pod_body("steady", [container("c", "sleep 3600")]))
    pod = wait_pod(cluster_spec, ns, "steady", _running, 30, "Running")
    cid = cstatus(pod, "c")["containerID"]
    d = cluster.daemon(cluster_spec, "containerd")
    process.stop(d)
    try:
        wait_for(lambda: _ready(cluster_spec)[0] == "False", 30, "node NotReady")
        assert "container runtime is down" in _ready(cluster_spec)[1]
    finally:
        process.start(d, containerd_command(cluster_spec))
    wait_for(lambda: _ready(cluster_spec)[0] == "True", 30, "node Ready again")
    pod = wait_pod(cluster_spec, ns, "steady", _running, 10, "still Running")
    assert cstatus(pod, "c")["containerID"] == cid
    assert cstatus(pod, "c")["restartCount"] == 0


def _renew(spec: ClusterSpec) -> datetime.datetime:
    status, body = cluster.api(
        spec, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
    )
    assert status == 200
    text = json.loads(body)["spec"]["renewTime"].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text)


def test_apiserver_restart(cluster_spec: ClusterSpec, ns: str) -> None:
    d = cluster.daemon(cluster_spec, "kube-apiserver")
    process.stop(d)
    try:
        time.sleep(12)  # the agent's lease renewal and a status round fail meanwhile
    finally:
        process.start(d, apiserver_command(cluster_spec))
    process.wait_ready(d, lambda: cluster.api(cluster_spec, "/readyz")[0] == 200, timeout=60)
    before = _renew(cluster_spec)
    wait_for(lambda: _renew(cluster_spec) > before, 20, "lease renewed after restart")
    create_pod(cluster_spec, ns, pod_body("after", [container("c", "sleep 3600")]))
    wait_pod(cluster_spec, ns, "after", _running, 30, "new pod Running after restart")
    assert get_pod(cluster_spec, ns, "steady") is not None
    assert _ready(cluster_spec)[0] == "True"
