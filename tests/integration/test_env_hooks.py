"""Container environments and lifecycle hooks on the real cluster: what a container sees (written to
its termination message), CreateContainerConfigError until a configMap exists, and the hooks."""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import up as cluster
from cluster.spec import ClusterSpec
from cluster.up import agent_daemon
from kube.apiserver import ApiClient
from kube.apiserver.requests import SERVICES

from .conftest import NODE
from .podutil import (
    agent_namespace,
    api_json,
    container,
    create_pod,
    cstatus,
    events,
    get_pod,
    pod_body,
    wait_for,
    wait_pod,
    waiting_reason,
)

Json = dict[str, Any]
DUMP_ENV = "env > /dev/termination-log"


@pytest.fixture(scope="module")
def ns(cluster_spec: ClusterSpec) -> Iterator[str]:
    with agent_namespace(cluster_spec) as namespace:
        try:
            yield namespace
        finally:
            log = agent_daemon(cluster_spec, NODE).log_file
            if log.exists():  # kept for a look after the cluster is gone
                shutil.copy(log, Path(tempfile.gettempdir()) / "test_env_hooks-agent.log")


def create(spec: ClusterSpec, ns: str, plural: str, body: Json) -> Json:
    return api_json(spec, f"/api/v1/namespaces/{ns}/{plural}", method="POST", body=body)


def configmap(spec: ClusterSpec, ns: str, name: str, data: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    create(spec, ns, "configmaps", body)


def secret(spec: ClusterSpec, ns: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}
    create(spec, ns, "secrets", body)


def terminated(pod: Json, name: str = "c") -> Json:
    result: Json = cstatus(pod, name).get("state", {}).get("terminated", {})
    return result


def run_to_end(spec: ClusterSpec, ns: str, body: Json, timeout: float = 60) -> Json:
    """Create a restartPolicy Never pod and wait for its container to end; its termination state."""
    name = body["metadata"]["name"]
    create_pod(spec, ns, body)
    pod = wait_pod(spec, ns, name, lambda p: bool(terminated(p)), timeout, "container ended")
    return terminated(pod)


def env_of(term: Json) -> dict[str, str]:
    out = {}
    for line in str(term.get("message", "")).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


async def test_node_identity_may_list_and_watch_services(cluster_spec: ClusterSpec) -> None:
    async with ApiClient.from_kubeconfig(cluster_spec.kubeconfig("node-" + NODE)) as client:
        listed = await client.list(SERVICES)
        names = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in listed.items}
        assert ("default", "kubernetes") in names
        stream = client.watch(SERVICES, resource_version=listed.resource_version, timeout_seconds=1)
        async for _ in stream:
            pass


def test_env_from_keys_that_are_no_shell_names_reach_the_process(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    # The upstream "should be consumable via the environment" keys: `data-1` is a valid
    # environment variable name (IsEnvVarName) but not a shell one, so no shell in between:
    # busybox's env applet prints what the process got, read back through the pod log.
    configmap(cluster_spec, ns, "dashed", {"data-1": "value-1"})
    c = container("c", "")
    c["command"] = ["env"]
    c["envFrom"] = [
        {"configMapRef": {"name": "dashed"}},
        {"prefix": "p-", "configMapRef": {"name": "dashed"}},
    ]
    assert run_to_end(cluster_spec, ns, pod_body("dashed", [c], restart="Never"))["exitCode"] == 0
    status, raw = cluster.api(cluster_spec, f"/api/v1/namespaces/{ns}/pods/dashed/log")
    assert status == 200, (status, raw[:200])
    lines = raw.decode().splitlines()
    assert "data-1=value-1" in lines and "p-data-1=value-1" in lines, lines


def test_configmap_secret_refs_and_env_from(cluster_spec: ClusterSpec, ns: str) -> None:
    configmap(cluster_spec, ns, "cfg", {"color": "blue", "size": "L", "1st": "ok"})
    secret(cluster_spec, ns, "sec", {"password": "hunter2", "user": "admin", "9lives": "x"})
    c = container("c", DUMP_ENV)
    c["envFrom"] = [
        {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
        {"secretRef": {"name": "sec"}},
        {"configMapRef": {"name": "absent", "optional": True}},
    ]
    c["env"] = [
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {
            "name": "OPT",
            "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": True}},
        },
        {"name": "COMBINED", "value": "$(CFG_size)-$(user)"},
    ]
    env = env_of(run_to_end(cluster_spec, ns, pod_body("refs", [c], restart="Never")))
    assert env["CFG_color"] == "blue" and env["CFG_size"] == "L" and env["CFG_1st"] == "ok"
    assert env["password"] == "hunter2" and env["user"] == "admin"
    assert env["COLOR"] == "blue" and env["PW"] == "hunter2"
    assert env["COMBINED"] == "L-admin"
    assert "OPT" not in env
    skipped = wait_for(
        lambda: [
            e
            for e in events(cluster_spec, ns, "refs")
            if e["reason"] == "InvalidEnvironmentVariableNames"
        ],
        20,
        "InvalidEnvironmentVariableNames event",
    )
    assert skipped[0]["message"] == (
        f"Keys [9lives] from the EnvFrom secret {ns}/sec were skipped since they are "
        "considered invalid environment variable names."
    )


def test_missing_configmap_then_created(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", DUMP_ENV)
    c["env"] = [{"name": "LATE", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "k"}}}]
    create_pod(cluster_spec, ns, pod_body("late", [c], restart="Never"))
    pod = wait_pod(
        cluster_spec,
        ns,
        "late",
        lambda p: waiting_reason(p, "c") == "CreateContainerConfigError",
        60,
        "CreateContainerConfigError",
    )
    assert cstatus(pod, "c")["state"]["waiting"]["message"] == 'configmap "late" not found'
    configmap(cluster_spec, ns, "late", {"k": "finally"})
    pod = wait_pod(cluster_spec, ns, "late", lambda p: bool(terminated(p)), 90, "started")
    assert env_of(terminated(pod))["LATE"] == "finally"


def test_downward_api_fields(cluster_spec: ClusterSpec, ns: str) -> None:
    def field(name: str, path: str) -> Json:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    def res(name: str, resource: str, divisor: str) -> Json:
        ref = {"resource": resource, "divisor": divisor}
        return {"name": name, "valueFrom": {"resourceFieldRef": ref}}

    c = container("c", DUMP_ENV)
    c["resources"] = {"limits": {"cpu": "250m", "memory": "64Mi"}}
    c["env"] = [
        field("POD_NAME", "metadata.name"),
        field("POD_NS", "metadata.namespace"),
        field("POD_UID", "metadata.uid"),
        field("LABEL", "metadata.labels['app']"),
        field("NOTE", "metadata.annotations['note']"),
        field("NODE", "spec.nodeName"),
        field("SA", "spec.serviceAccountName"),
        field("POD_IP", "status.podIP"),
        field("POD_IPS", "status.podIPs"),
        field("HOST_IP", "status.hostIP"),
        field("HOST_IPS", "status.hostIPs"),
        res("CPU_M", "limits.cpu", "1m"),
        res("MEM_MI", "limits.memory", "1Mi"),
        res("REQ_CPU_M", "requests.cpu", "1m"),
    ]
    plain = container("d", DUMP_ENV)
    plain["env"] = [res("ALLOC_CPU", "limits.cpu", "1"), res("ALLOC_MEM", "limits.memory", "1")]
    body = pod_body("downward", [c, plain], restart="Never")
    body["metadata"]["labels"] = {"app": "web"}
    body["metadata"]["annotations"] = {"note": "hello"}
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec,
        ns,
        "downward",
        lambda p: (
            bool(terminated(p, "c")) and bool(terminated(p, "d")) and bool(p["status"].get("podIP"))
        ),
        60,
        "both ended",
    )
    env = env_of(terminated(pod, "c"))
    meta, status = pod["metadata"], pod["status"]
    assert (env["POD_NAME"], env["POD_NS"], env["POD_UID"]) == ("downward", ns, meta["uid"])
    assert (env["LABEL"], env["NOTE"], env["NODE"], env["SA"]) == ("web", "hello", NODE, "default")
    assert env["POD_IP"] == status["podIP"]
    assert env["POD_IPS"] == ",".join(p["ip"] for p in status["podIPs"])
    assert env["HOST_IP"] == status["hostIP"]
    assert env["HOST_IPS"].split(",")[0] == status["hostIP"]
    assert (env["CPU_M"], env["MEM_MI"], env["REQ_CPU_M"]) == ("250", "64", "250")
    alloc = api_json(cluster_spec, f"/api/v1/nodes/{NODE}")["status"]["allocatable"]
    cpu, mem = str(alloc["cpu"]), str(alloc["memory"])
    millis = int(cpu[:-1]) if cpu.endswith("m") else int(cpu) * 1000
    env_d = env_of(terminated(pod, "d"))
    assert env_d["ALLOC_CPU"] == str(-(-millis // 1000))  # no limit: node allocatable
    assert mem.endswith("Ki") and env_d["ALLOC_MEM"] == str(int(mem[:-2]) * 1024)


def test_var_expansion_in_command_and_args(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "")
    c["command"] = ["sh", "-c", 'printf "%s|%s|%s|%s" "$1" "$2" "$3" "$4" > /dev/termination-log']
    c["args"] = ["sh", "$(A)", "$$(A)", "$(NOPE)", "x-$(B)"]
    c["env"] = [{"name": "A", "value": "alpha"}, {"name": "B", "value": "$(A)+beta"}]
    term = run_to_end(cluster_spec, ns, pod_body("expand", [c], restart="Never"))
    assert term["message"] == "alpha|$(A)|$(NOPE)|x-alpha+beta"


def test_service_env_vars(cluster_spec: ClusterSpec, ns: str) -> None:
    svc = create(
        cluster_spec,
        ns,
        "services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "my-web"},
            "spec": {
                "type": "ClusterIP",
                "selector": {"app": "none"},
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            },
        },
    )
    ip = svc["spec"]["clusterIP"]
    time.sleep(1)  # the agent's Service watch sees it
    c = container("c", "env | grep -E 'SERVICE|_PORT' > /dev/termination-log")
    env = env_of(run_to_end(cluster_spec, ns, pod_body("svcenv", [c], restart="Never")))
    assert env["MY_WEB_SERVICE_HOST"] == ip
    assert env["MY_WEB_SERVICE_PORT"] == "8080"
    assert env["MY_WEB_SERVICE_PORT_HTTP"] == "8080"
    assert env["MY_WEB_PORT"] == f"tcp://{ip}:8080"
    assert env["MY_WEB_PORT_8080_TCP"] == f"tcp://{ip}:8080"
    assert env["MY_WEB_PORT_8080_TCP_PROTO"] == "tcp"
    assert env["MY_WEB_PORT_8080_TCP_PORT"] == "8080"
    assert env["MY_WEB_PORT_8080_TCP_ADDR"] == ip
    assert "KUBERNETES_SERVICE_HOST" in env
    off = container("c", "env | grep -E 'SERVICE|_PORT' > /dev/termination-log")
    body = pod_body("nolinks", [off], restart="Never")
    body["spec"]["enableServiceLinks"] = False
    env = env_of(run_to_end(cluster_spec, ns, body))
    assert "MY_WEB_SERVICE_HOST" not in env and "KUBERNETES_SERVICE_HOST" in env


def test_post_start_exec_runs_before_main_reads(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container(
        "c",
        "i=0; while [ ! -f /tmp/hooked ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
        "cat /tmp/hooked > /dev/termination-log",
    )
    c["lifecycle"] = {
        "postStart": {"exec": {"command": ["sh", "-c", "echo -n from-hook > /tmp/hooked"]}}
    }
    term = run_to_end(cluster_spec, ns, pod_body("poststart", [c], restart="Never"))
    assert term["message"] == "from-hook"


def test_failing_post_start_kills_and_restarts(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "trap 'exit 0' TERM; while true; do sleep 0.2; done")
    c["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", "exit 3"]}}}
    create_pod(cluster_spec, ns, pod_body("badhook", [c], grace=2))
    wait_for(
        lambda: [
            e for e in events(cluster_spec, ns, "badhook") if e["reason"] == "FailedPostStartHook"
        ],
        60,
        "FailedPostStartHook event",
    )
    wait_pod(
        cluster_spec,
        ns,
        "badhook",
        lambda p: int(cstatus(p, "c").get("restartCount", 0)) >= 1,
        60,
        "restarted",
    )


def test_pre_stop_runs_on_delete(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    c["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "3"]}}}
    create_pod(cluster_spec, ns, pod_body("prestop", [c], grace=30))
    wait_pod(
        cluster_spec,
        ns,
        "prestop",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    t0 = time.monotonic()
    api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/prestop", method="DELETE")
    wait_for(lambda: get_pod(cluster_spec, ns, "prestop") is None, 40, "pod gone")
    took = time.monotonic() - t0
    assert took >= 3.0, f"deleted in {took:.1f}s: preStop did not run first"
    assert took < 25, f"deleted in {took:.1f}s: the kill waited for the grace period"


HANDLER = (
    "mkdir -p /www/cgi-bin && "
    'printf \'#!/bin/sh\\necho -n "$REQUEST_URI $HTTP_X_HOOK" > /tmp/hit\\n'
    "echo Content-Type: text/plain\\necho\\necho ok\\n' > /www/cgi-bin/hook && "
    "chmod +x /www/cgi-bin/hook && httpd -p 8080 -h /www && "
    "i=0; while [ ! -s /tmp/hit ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
    "cat /tmp/hit > /dev/termination-log"
)


def test_post_start_http_get_reaches_handler(cluster_spec: ClusterSpec, ns: str) -> None:
    create_pod(cluster_spec, ns, pod_body("handler", [container("c", HANDLER)], restart="Never"))
    handler = wait_pod(
        cluster_spec,
        ns,
        "handler",
        lambda p: "running" in cstatus(p, "c").get("state", {}) and bool(p["status"].get("podIP")),
        60,
        "handler running",
    )
    time.sleep(0.5)  # httpd listening
    c = container("c", "sleep 3600")
    c["ports"] = [{"name": "hook", "containerPort": 8080}]
    c["lifecycle"] = {
        "postStart": {
            "httpGet": {
                "host": handler["status"]["podIP"],
                "port": "hook",
                "path": "/cgi-bin/hook?x=1",
                "httpHeaders": [{"name": "X-Hook", "value": "yes"}],
            }
        }
    }
    create_pod(cluster_spec, ns, pod_body("client", [c], grace=1))
    done = wait_pod(cluster_spec, ns, "handler", lambda p: bool(terminated(p)), 60, "hook hit")
    assert terminated(done)["message"] == "/cgi-bin/hook?x=1 yes"
    client = wait_pod(
        cluster_spec,
        ns,
        "client",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        30,
        "client running",
    )
    assert int(cstatus(client, "c").get("restartCount", 0)) == 0
