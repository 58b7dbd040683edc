"""Static pods on pykubelet: a manifest in staticPodPath runs, its mirror pod shows it Running in
the apiserver, a deleted mirror comes back without touching the pod, removing the file stops it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec
from cri import api
from cri.client import RuntimeClient

from .conftest import NODE
from .podutil import Json, api_json, container, cstatus, get_pod, new_namespace, wait_for, wait_pod

MIRROR = "kubernetes.io/config.mirror"


@pytest.fixture(scope="module")
def static_dir(
    cluster_spec: ClusterSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    directory = Path(tmp_path_factory.mktemp("manifests"))
    cluster.start_node(cluster_spec, NODE, static_pod_path=directory)
    try:
        yield directory
    finally:
        for f in directory.iterdir():
            f.unlink()
        time.sleep(3)
        process.stop(cluster.agent_daemon(cluster_spec, NODE))
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def ns(cluster_spec: ClusterSpec, static_dir: Path) -> str:
    return new_namespace(cluster_spec)


def _manifest(name: str, ns: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"containers": [container("c", "sleep 3600")]},
    }


def _running(pod: Json) -> bool:
    st = pod.get("status", {})
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
    return (
        st.get("phase") == "Running" and ready and "running" in cstatus(pod, "c").get("state", {})
    )


def _cri_containers(spec: ClusterSpec, pod_name: str) -> list[api.Container]:
    async def go() -> list[api.Container]:
        async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
            f = api.ContainerFilter(label_selector={"io.kubernetes.pod.name": pod_name})
            return await rt.list_containers(filter=f)

    return asyncio.run(go())


def _live(spec: ClusterSpec, pod_name: str) -> list[api.Container]:
    return [
        c
        for c in _cri_containers(spec, pod_name)
        if c.state in (api.CONTAINER_RUNNING, api.CONTAINER_CREATED)
    ]


def test_static_pod_runs_with_a_mirror_that_survives_deletion(
    cluster_spec: ClusterSpec, static_dir: Path, ns: str
) -> None:
    name = f"web-{NODE}"
    (static_dir / "web.yaml").write_text(yaml.safe_dump(_manifest("web", ns)))
    mirror = wait_pod(cluster_spec, ns, name, _running, 60, "mirror pod Running")
    meta = mirror["metadata"]
    static_uid = meta["annotations"][MIRROR]
    assert meta["annotations"]["kubernetes.io/config.source"] == "file"
    assert meta["annotations"]["kubernetes.io/config.hash"] == static_uid
    assert meta["uid"] != static_uid
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Node", NODE, True)
    assert mirror["spec"]["nodeName"] == NODE
    assert not mirror["spec"].get("serviceAccountName")
    assert not mirror["spec"].get("volumes")  # no service account token injected
    [ctr] = _live(cluster_spec, name)
    assert ctr.labels["io.kubernetes.pod.uid"] == static_uid
    assert ctr.labels["io.kubernetes.pod.namespace"] == ns
    assert ctr.state == api.CONTAINER_RUNNING
    assert cstatus(mirror, "c")["containerID"] == f"containerd://{ctr.id}"
    assert mirror["status"]["podIP"] and mirror["status"]["hostIP"]

    # Deleting the mirror pod through the API: it comes back, the container keeps running.
    api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/{name}", method="DELETE")
    again = wait_pod(
        cluster_spec,
        ns,
        name,
        lambda p: p["metadata"]["uid"] != meta["uid"] and _running(p),
        30,
        "mirror pod re-created with status",
    )
    assert again["metadata"]["annotations"][MIRROR] == static_uid
    assert cstatus(again, "c")["containerID"] == f"containerd://{ctr.id}"
    assert [c.id for c in _live(cluster_spec, name)] == [ctr.id]

    # Removing the manifest: the containers stop and the mirror pod goes.
    (static_dir / "web.yaml").unlink()
    wait_for(lambda: get_pod(cluster_spec, ns, name) is None, 60, "mirror pod deleted")
    wait_for(lambda: not _live(cluster_spec, name), 60, "static pod's containers stopped")


def test_changed_manifest_replaces_the_pod_and_bad_ones_are_skipped(
    cluster_spec: ClusterSpec, static_dir: Path, ns: str
) -> None:
    name = f"app-{NODE}"
    (static_dir / ".ignored.yaml").write_text("not: [a pod")
    (static_dir / "broken.yaml").write_text("kind: Pod\nmetadata: {name: broken}\n")
    body = _manifest("app", ns)
    (static_dir / "app.json").write_text(json.dumps(body))
    first = wait_pod(cluster_spec, ns, name, _running, 60, "mirror pod Running")
    [old] = _live(cluster_spec, name)
    body["spec"]["containers"][0]["command"] = ["sh", "-c", "sleep 3601"]
    (static_dir / "app.json").write_text(json.dumps(body))
    second = wait_pod(
        cluster_spec,
        ns,
        name,
        lambda p: (
            p["metadata"]["annotations"][MIRROR] != first["metadata"]["annotations"][MIRROR]
            and _running(p)
        ),
        60,
        "mirror pod of the new manifest Running",
    )
    [new] = _live(cluster_spec, name)
    assert new.id != old.id
    assert new.labels["io.kubernetes.pod.uid"] == second["metadata"]["annotations"][MIRROR]
    daemon = cluster.agent_daemon(cluster_spec, NODE)
    assert daemon.pid() is not None
    log = daemon.log_file.read_text(errors="replace")
    assert "broken.yaml skipped" in log and "ignored.yaml" not in log
    (static_dir / "app.json").unlink()
    wait_for(lambda: get_pod(cluster_spec, ns, name) is None, 60, "mirror pod deleted")
    wait_for(lambda: not _live(cluster_spec, name), 60, "containers stopped")


def test_agent_restart_keeps_the_static_pod_and_its_mirror(
    cluster_spec: ClusterSpec, static_dir: Path, ns: str
) -> None:
    name = f"keep-{NODE}"
    (static_dir / "keep.yml").write_text(yaml.safe_dump(_manifest("keep", ns)))
    before = wait_pod(cluster_spec, ns, name, _running, 60, "mirror pod Running")
    [ctr] = _live(cluster_spec, name)
    process.stop(cluster.agent_daemon(cluster_spec, NODE))
    cluster.start_node(cluster_spec, NODE, static_pod_path=static_dir)
    time.sleep(5)  # a few file scans and mirror reconciles after the restart
    after = wait_pod(cluster_spec, ns, name, _running, 30, "mirror pod Running")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert [c.id for c in _live(cluster_spec, name)] == [ctr.id]
    (static_dir / "keep.yml").unlink()
    wait_for(lambda: get_pod(cluster_spec, ns, name) is None, 60, "mirror pod deleted")
    wait_for(lambda: not _live(cluster_spec, name), 60, "containers stopped")
