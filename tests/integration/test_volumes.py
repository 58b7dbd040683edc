"""Pod volumes on pykubelet, checked from inside the containers (their termination messages):
configMap, secret, emptyDir, hostPath, projected token, downwardAPI, subPath, refresh, teardown.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec

from .conftest import NODE
from .podutil import (
    Json,
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

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _terminated(pod: Json, name: str = "c") -> Json:
    result: Json = cstatus(pod, name).get("state", {}).get("terminated", {})
    return result


def _run(
    spec: ClusterSpec,
    ns: str,
    name: str,
    script: str,
    volumes: list[Json],
    mounts: list[Json],
    *,
    init: list[Json] | None = None,
    timeout: float = 60,
) -> str:
    """Run a restartPolicy Never pod with one container "c"; its termination message."""
    c = container("c", script)
    c["volumeMounts"] = mounts
    body = pod_body(name, [c], restart="Never", init=init)
    body["spec"]["volumes"] = volumes
    create_pod(spec, ns, body)
    pod = wait_pod(spec, ns, name, lambda p: bool(_terminated(p)), timeout, "terminated")
    term = _terminated(pod)
    assert term["exitCode"] == 0, term
    return str(term.get("message", ""))


def _create(spec: ClusterSpec, ns: str, plural: str, body: Json) -> Json:
    return api_json(spec, f"/api/v1/namespaces/{ns}/{plural}", method="POST", body=body)


def _configmap(name: str, data: dict[str, str]) -> Json:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _root_dir(spec: ClusterSpec) -> Path:
    return spec.directory / "nodes" / NODE / "root"


def _host_mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            out.append(point)
    return out


def test_configmap_items_and_modes(cluster_spec: ClusterSpec, ns: str) -> None:
    _create(cluster_spec, ns, "configmaps", _configmap("cfg", {"a": "hello", "b": "world"}))
    vol = {
        "name": "cfg",
        "configMap": {
            "name": "cfg",
            "defaultMode": 0o640,
            "items": [{"key": "a", "path": "sub/x", "mode": 0o600}, {"key": "b", "path": "y"}],
        },
    }
    script = (
        "{ cat /etc/cfg/sub/x; echo; cat /etc/cfg/y; echo;"
        " stat -L -c %a /etc/cfg/sub/x /etc/cfg/y; ls /etc/cfg;"
        " touch /etc/cfg/z 2>/dev/null && echo writable || echo readonly; } > /dev/termination-log"
    )
    msg = _run(cluster_spec, ns, "cm", script, [vol], [{"name": "cfg", "mountPath": "/etc/cfg"}])
    assert msg.split("\n") == ["hello", "world", "600", "640", "sub", "y", "readonly", ""]


def test_secret_is_on_tmpfs(cluster_spec: ClusterSpec, ns: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sec"},
        "data": {"password": base64.b64encode(b"s3cret").decode()},
    }
    _create(cluster_spec, ns, "secrets", secret)
    vol = {"name": "sec", "secret": {"secretName": "sec"}}
    script = (
        "{ cat /etc/sec/password; echo; grep ' /etc/sec ' /proc/mounts; } > /dev/termination-log"
    )
    msg = _run(cluster_spec, ns, "sec", script, [vol], [{"name": "sec", "mountPath": "/etc/sec"}])
    first, mount = msg.split("\n", 1)
    assert first == "s3cret"
    assert mount.split()[2] == "tmpfs", mount


def test_empty_dir_shared_with_init_container(cluster_spec: ClusterSpec, ns: str) -> None:
    init = container("init", "echo from-init > /data/f")
    init["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    msg = _run(
        cluster_spec,
        ns,
        "ed",
        "cat /data/f > /dev/termination-log",
        [{"name": "data", "emptyDir": {}}],
        [{"name": "data", "mountPath": "/data"}],
        init=[init],
    )
    assert msg == "from-init\n"


def test_empty_dir_memory_is_tmpfs_with_size(cluster_spec: ClusterSpec, ns: str) -> None:
    vol = {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
    msg = _run(
        cluster_spec,
        ns,
        "edm",
        "grep ' /cache ' /proc/mounts > /dev/termination-log",
        [vol],
        [{"name": "m", "mountPath": "/cache"}],
    )
    fields = msg.split()
    assert fields[2] == "tmpfs", msg
    assert "size=16384k" in fields[3], msg


def test_host_path_directory_or_create_and_type_check(cluster_spec: ClusterSpec, ns: str) -> None:
    host = cluster_spec.directory / "hostpath" / uuid.uuid4().hex[:8]
    vol = {"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}}
    msg = _run(
        cluster_spec,
        ns,
        "hp",
        "echo hi > /h/f && echo done > /dev/termination-log",
        [vol],
        [{"name": "h", "mountPath": "/h"}],
    )
    assert msg == "done\n"
    assert (host / "f").read_text() == "hi\n"
    c = container("c", "true")
    c["volumeMounts"] = [{"name": "h", "mountPath": "/h"}]
    body = pod_body("hp-bad", [c], restart="Never")
    missing = host / "nope"
    body["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": str(missing), "type": "File"}}]
    create_pod(cluster_spec, ns, body)
    failed = wait_for(
        lambda: [e for e in events(cluster_spec, ns, "hp-bad") if e["reason"] == "FailedMount"],
        30,
        "FailedMount event",
    )
    text = failed[0]["message"]
    assert '"h"' in text and str(missing) in text and "File" in text, text


def test_projected_service_account_token(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container(
        "c",
        f"{{ tr '.' '\\n' < {SA_DIR}/token | grep -c . ; cat {SA_DIR}/namespace; echo;"
        f" grep -c 'BEGIN CERTIFICATE' {SA_DIR}/ca.crt; ls {SA_DIR}; }} > /dev/termination-log",
    )
    body = pod_body("sa", [c], restart="Never")
    body["spec"]["automountServiceAccountToken"] = True
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(cluster_spec, ns, "sa", lambda p: bool(_terminated(p)), 60, "terminated")
    msg = str(_terminated(pod).get("message", ""))
    lines = msg.split("\n")
    assert lines[0] == "3", msg
    assert lines[1] == ns
    assert int(lines[2]) >= 1
    assert lines[3:6] == ["ca.crt", "namespace", "token"]


def test_downward_api_labels(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "cat /etc/podinfo/labels /etc/podinfo/name > /dev/termination-log")
    c["volumeMounts"] = [{"name": "info", "mountPath": "/etc/podinfo"}]
    body = pod_body("dw", [c], restart="Never")
    body["metadata"]["labels"] = {"app": "web", "tier": "front-end"}
    body["spec"]["volumes"] = [
        {
            "name": "info",
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                ]
            },
        }
    ]
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(cluster_spec, ns, "dw", lambda p: bool(_terminated(p)), 60, "terminated")
    assert _terminated(pod)["message"] == 'app="web"\ntier="front-end"dw'


def test_missing_configmap_then_created(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "cat /etc/late/k > /dev/termination-log")
    c["volumeMounts"] = [{"name": "late", "mountPath": "/etc/late"}]
    body = pod_body("late", [c], restart="Never")
    body["spec"]["volumes"] = [{"name": "late", "configMap": {"name": "late"}}]
    create_pod(cluster_spec, ns, body)
    wait_for(
        lambda: [
            e
            for e in events(cluster_spec, ns, "late")
            if e["reason"] == "FailedMount" and 'configmap "late" not found' in e["message"]
        ],
        30,
        "FailedMount naming the configmap",
    )
    # the status write follows the event closely, not necessarily before it is listed
    wait_pod(
        cluster_spec,
        ns,
        "late",
        lambda p: waiting_reason(p, "c") in ("ContainerCreating", "CreateContainerConfigError"),
        10,
        "waiting for its volume",
    )
    _create(cluster_spec, ns, "configmaps", _configmap("late", {"k": "arrived"}))
    pod = wait_pod(cluster_spec, ns, "late", lambda p: bool(_terminated(p)), 60, "terminated")
    assert _terminated(pod)["message"] == "arrived"


def test_subpath_symlink_escape_refused(cluster_spec: ClusterSpec, ns: str) -> None:
    init = container("init", "ln -s /etc /data/escape")
    init["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    c = container("c", "true")
    c["volumeMounts"] = [{"name": "data", "mountPath": "/x", "subPath": "escape"}]
    body = pod_body("esc", [c], restart="Never", init=[init])
    body["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec,
        ns,
        "esc",
        lambda p: waiting_reason(p, "c") == "CreateContainerConfigError",
        60,
        "CreateContainerConfigError",
    )
    message = cstatus(pod, "c")["state"]["waiting"].get("message", "")
    assert 'subPath "escape"' in message and "outside" in message, message
    assert any("escape" in e["message"] for e in events(cluster_spec, ns, "esc"))


def test_configmap_update_reaches_running_pod_atomically(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    old, new = "a" * 4000, "b" * 4000
    _create(cluster_spec, ns, "configmaps", _configmap("live", {"k": old}))
    script = (
        f"while true; do c=$(cat /etc/live/k); case $c in {old}) ;;"
        f" {new}) echo updated > /dev/termination-log; exit 0;;"
        ' *) echo "torn:${#c}" > /dev/termination-log; exit 1;; esac; done'
    )
    c = container("c", script)
    c["volumeMounts"] = [{"name": "live", "mountPath": "/etc/live"}]
    body = pod_body("live", [c], restart="Never")
    body["spec"]["volumes"] = [{"name": "live", "configMap": {"name": "live"}}]
    create_pod(cluster_spec, ns, body)
    wait_pod(
        cluster_spec,
        ns,
        "live",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    api_json(
        cluster_spec,
        f"/api/v1/namespaces/{ns}/configmaps/live",
        method="PUT",
        body=_configmap("live", {"k": new}),
    )
    pod = wait_pod(cluster_spec, ns, "live", lambda p: bool(_terminated(p)), 75, "update seen")
    assert _terminated(pod)["message"] == "updated\n"


def test_nothing_left_after_delete(cluster_spec: ClusterSpec, ns: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gone"}, "data": {}}
    _create(cluster_spec, ns, "secrets", secret)
    c = container("c", "sleep 3600")
    c["volumeMounts"] = [
        {"name": "s", "mountPath": "/s"},
        {"name": "m", "mountPath": "/m"},
        {"name": "d", "mountPath": "/d"},
    ]
    body = pod_body("gone", [c], grace=1)
    body["spec"]["automountServiceAccountToken"] = True
    body["spec"]["volumes"] = [
        {"name": "s", "secret": {"secretName": "gone"}},
        {"name": "m", "emptyDir": {"medium": "Memory"}},
        {"name": "d", "emptyDir": {}},
    ]
    created = create_pod(cluster_spec, ns, body)
    uid = created["metadata"]["uid"]
    pod_dir = _root_dir(cluster_spec) / "pods" / uid
    wait_pod(
        cluster_spec,
        ns,
        "gone",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    assert len(_host_mounts_under(pod_dir)) >= 3, _host_mounts_under(pod_dir)
    api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/gone", method="DELETE")
    wait_for(lambda: get_pod(cluster_spec, ns, "gone") is None, 60, "pod deleted")
    wait_for(lambda: not pod_dir.exists(), 30, "pod dir removed")
    assert _host_mounts_under(pod_dir) == []


def test_fs_group_ownership_and_subpath_file(cluster_spec: ClusterSpec, ns: str) -> None:
    _create(cluster_spec, ns, "configmaps", _configmap("own", {"k": "v", "app.conf": "x=1"}))
    c = container(
        "c",
        "{ stat -c '%g %a' /data /etc/own/..data/k; cat /etc/app.conf; echo;"
        " touch /ro/f 2>/dev/null && echo writable || echo readonly; } > /dev/termination-log",
    )
    c["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/ro", "readOnly": True},
        {"name": "own", "mountPath": "/etc/own"},
        {"name": "own", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
    ]
    body = pod_body("own", [c], restart="Never")
    body["spec"]["securityContext"] = {"fsGroup": 1234}
    body["spec"]["volumes"] = [
        {"name": "data", "emptyDir": {}},
        {"name": "own", "configMap": {"name": "own"}},
    ]
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(cluster_spec, ns, "own", lambda p: bool(_terminated(p)), 60, "terminated")
    assert _terminated(pod)["message"].split("\n") == [
        "1234 2777",
        "1234 644",
        "x=1",
        "readonly",
        "",
    ]


def test_fs_group_memory_empty_dir_new_subpath_mode(cluster_spec: ClusterSpec, ns: str) -> None:
    # The upstream e2e "nonexistent volume subPath should have the correct mode and owner using
    # FSGroup": the tmpfs root is sticky like /tmp, fsGroup adds setgid, and a subPath the node
    # creates takes the root's mode rather than the runtime's 0755.
    c = container("c", "stat -c '%u %g %A' /sub /whole > /dev/termination-log")
    c["volumeMounts"] = [
        {"name": "m", "mountPath": "/sub", "subPath": "test-sub"},
        {"name": "m", "mountPath": "/whole"},
    ]
    body = pod_body("fsg-sub", [c], restart="Never")
    body["spec"]["securityContext"] = {"fsGroup": 123}
    body["spec"]["volumes"] = [{"name": "m", "emptyDir": {"medium": "Memory"}}]
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(cluster_spec, ns, "fsg-sub", lambda p: bool(_terminated(p)), 60, "terminated")
    assert _terminated(pod)["message"].split("\n") == [
        "0 123 drwxrwsrwt",
        "0 123 drwxrwsrwt",
        "",
    ]


def test_teardown_after_agent_restart(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "sleep 3600")
    c["volumeMounts"] = [{"name": "m", "mountPath": "/m"}]
    body = pod_body("restart", [c], grace=1)
    body["spec"]["volumes"] = [{"name": "m", "emptyDir": {"medium": "Memory"}}]
    uid = create_pod(cluster_spec, ns, body)["metadata"]["uid"]
    pod_dir = _root_dir(cluster_spec) / "pods" / uid
    wait_pod(
        cluster_spec,
        ns,
        "restart",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    process.stop(cluster.agent_daemon(cluster_spec, NODE))
    cluster.start_node(cluster_spec, NODE)
    assert _host_mounts_under(pod_dir), "the tmpfs outlives the agent process"
    api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/restart", method="DELETE")
    wait_for(lambda: get_pod(cluster_spec, ns, "restart") is None, 60, "pod deleted")
    wait_for(lambda: not pod_dir.exists(), 30, "pod dir removed")
    assert _host_mounts_under(pod_dir) == []


def _tmpfs_size_k(mount_line: str) -> int:
    """The size= option of a /proc/mounts line, in KiB."""
    opts = mount_line.split()[3].split(",")
    size = next(o.removeprefix("size=") for o in opts if o.startswith("size="))
    assert size.endswith("k"), mount_line
    return int(size[:-1])


def test_empty_dir_memory_default_size(cluster_spec: ClusterSpec, ns: str) -> None:
    """Without sizeLimit the tmpfs gets the pod's memory limit, or node allocatable memory."""
    vol = {"name": "m", "emptyDir": {"medium": "Memory"}}
    mounts = [{"name": "m", "mountPath": "/cache"}]
    script = "grep ' /cache ' /proc/mounts > /dev/termination-log"
    c = container("c", script)
    c["volumeMounts"] = mounts
    c["resources"] = {"limits": {"memory": "48Mi"}}
    body = pod_body("edm-limit", [c], restart="Never")
    body["spec"]["volumes"] = [vol]
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(cluster_spec, ns, "edm-limit", lambda p: bool(_terminated(p)), 60, "done")
    assert _tmpfs_size_k(_terminated(pod)["message"]) == 48 * 1024
    msg = _run(cluster_spec, ns, "edm-node", script, [vol], mounts)
    node = api_json(cluster_spec, f"/api/v1/nodes/{NODE}")
    allocatable = str(node["status"]["allocatable"]["memory"])
    assert allocatable.endswith("Ki"), allocatable
    # the kernel rounds the size up to whole pages
    assert abs(_tmpfs_size_k(msg) - int(allocatable[:-2])) < 4, (msg, allocatable)


def test_terminal_pod_volumes_torn_down_before_deletion(cluster_spec: ClusterSpec, ns: str) -> None:
    _create(cluster_spec, ns, "configmaps", _configmap("term", {"k": "v"}))
    c = container("c", "grep -c ' /m ' /proc/mounts > /dev/termination-log; cat /cm/k")
    c["volumeMounts"] = [{"name": "m", "mountPath": "/m"}, {"name": "cm", "mountPath": "/cm"}]
    body = pod_body("term", [c], restart="Never")
    body["spec"]["volumes"] = [
        {"name": "m", "emptyDir": {"medium": "Memory"}},
        {"name": "cm", "configMap": {"name": "term"}},
    ]
    uid = create_pod(cluster_spec, ns, body)["metadata"]["uid"]
    pod = wait_pod(
        cluster_spec, ns, "term", lambda p: p["status"].get("phase") == "Succeeded", 60, "done"
    )
    assert _terminated(pod)["message"] == "1\n"  # the tmpfs was there while it ran
    pod_dir = _root_dir(cluster_spec) / "pods" / uid
    wait_for(lambda: not (pod_dir / "volumes").exists(), 30, "volumes of the Succeeded pod removed")
    assert _host_mounts_under(pod_dir) == []
    assert get_pod(cluster_spec, ns, "term") is not None  # the object stays: not a deletion


def test_orphaned_pod_dirs_removed_at_start(cluster_spec: ClusterSpec, ns: str) -> None:
    """A pod directory with a mount left by an earlier agent for a pod that no longer exists."""
    orphan = _root_dir(cluster_spec) / "pods" / str(uuid.uuid4())
    tmpfs = orphan / "volumes" / "kubernetes.io~empty-dir" / "m"
    process.stop(cluster.agent_daemon(cluster_spec, NODE))
    try:
        tmpfs.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(tmpfs)], check=True)
        (orphan / "containers").mkdir()
        cluster.start_node(cluster_spec, NODE)
        try:
            wait_for(lambda: not orphan.exists(), 30, "orphaned pod dir removed")
        except AssertionError as e:
            log = cluster.agent_daemon(cluster_spec, NODE).log_file.read_text(errors="replace")
            raise AssertionError(f"{e}\nagent log:\n" + "\n".join(log.splitlines()[-30:])) from None
        assert _host_mounts_under(orphan) == []
    finally:
        if _host_mounts_under(tmpfs):
            subprocess.run(["umount", str(tmpfs)], check=False)
        shutil.rmtree(orphan, ignore_errors=True)
        cluster.start_node(cluster_spec, NODE)
