"""kube.apiserver against the real control plane: CRUD and watch as admin, and what the Node
authorizer lets a node identity list and watch (its own pods only).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import pytest

from cluster.spec import ClusterSpec
from kube.apiserver import (
    CONFIGMAPS,
    NAMESPACES,
    NODES,
    PODS,
    SYNC,
    AlreadyExists,
    ApiClient,
    Conflict,
    Forbidden,
    InformerEvent,
    NotFound,
    Resource,
    list_then_watch,
)

from .conftest import NODE

SERVICEACCOUNTS = Resource("serviceaccounts")
TIMEOUT = 30.0


@pytest.fixture
async def admin(cluster_spec: ClusterSpec) -> AsyncIterator[ApiClient]:
    async with ApiClient.from_kubeconfig(cluster_spec.admin_kubeconfig) as client:
        yield client


@pytest.fixture
async def node_client(cluster_spec: ClusterSpec) -> AsyncIterator[ApiClient]:
    async with ApiClient.from_kubeconfig(cluster_spec.kubeconfig(f"node-{NODE}")) as client:
        yield client


@pytest.fixture
async def namespace(admin: ApiClient) -> AsyncIterator[str]:
    name = f"itest-api-{uuid.uuid4().hex[:8]}"
    await admin.create(NAMESPACES, {"metadata": {"name": name}})
    try:
        yield name
    finally:
        await admin.delete(NAMESPACES, name)


def configmap(name: str, namespace: str, **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"itest": "apiserver"}},
        "data": data,
    }


async def test_configmap_crud_as_admin(admin: ApiClient, namespace: str) -> None:
    created = await admin.create(CONFIGMAPS, configmap("cfg", namespace, a="1"))
    assert created["metadata"]["uid"]
    with pytest.raises(AlreadyExists, match=f'configmaps "cfg" in namespace "{namespace}"'):
        await admin.create(CONFIGMAPS, configmap("cfg", namespace))

    got = await admin.get(CONFIGMAPS, "cfg", namespace=namespace)
    assert got["data"] == {"a": "1"}

    patched = await admin.patch(CONFIGMAPS, "cfg", {"data": {"b": "2"}}, namespace=namespace)
    assert patched["data"] == {"a": "1", "b": "2"}
    with pytest.raises(Conflict):  # `got` holds the resourceVersion from before the patch
        await admin.replace(CONFIGMAPS, got)

    listed = await admin.list(
        CONFIGMAPS, namespace=namespace, label_selector={"itest": "apiserver"}
    )
    assert [i["metadata"]["name"] for i in listed.items] == ["cfg"]
    assert listed.items[0]["kind"] == "ConfigMap" and int(listed.resource_version) > 0

    await admin.delete(CONFIGMAPS, "cfg", namespace=namespace)
    with pytest.raises(NotFound) as info:
        await admin.get(CONFIGMAPS, "cfg", namespace=namespace)
    assert info.value.code == 404
    assert str(info.value) == f'configmaps "cfg" in namespace "{namespace}": not found'


async def test_watch_sees_added_modified_deleted_in_order(admin: ApiClient, namespace: str) -> None:
    start = await admin.list(CONFIGMAPS, namespace=namespace)
    seen: list[tuple[str, str]] = []

    async def collect() -> None:
        stream = admin.watch(
            CONFIGMAPS,
            namespace=namespace,
            label_selector="itest=apiserver",
            resource_version=start.resource_version,
            timeout_seconds=60,
        )
        async with aclosing(stream) as events:
            async for kind, obj in events:
                if kind == "BOOKMARK":
                    continue
                seen.append((kind, obj["metadata"]["name"]))
                if kind == "DELETED":
                    return

    watcher = asyncio.create_task(collect())
    try:
        await admin.create(CONFIGMAPS, configmap("w", namespace, v="1"))
        await admin.patch(CONFIGMAPS, "w", {"data": {"v": "2"}}, namespace=namespace)
        await admin.delete(CONFIGMAPS, "w", namespace=namespace)
        await asyncio.wait_for(watcher, TIMEOUT)
    finally:
        watcher.cancel()
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def _wait_for_default_sa(admin: ApiClient, namespace: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            await admin.get(SERVICEACCOUNTS, "default", namespace=namespace)
            return
        except NotFound:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def pod(name: str, namespace: str, node: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
        },
    }


async def _next(events: AsyncGenerator[InformerEvent, None], want: str, name: str) -> InformerEvent:
    """The next event of type `want` for pod `name` (others, e.g. status changes, skipped)."""
    async with asyncio.timeout(TIMEOUT):
        async for ev in events:
            assert ev.object is not None and ev.object["spec"]["nodeName"] == NODE
            if ev.type == want and ev.object["metadata"]["name"] == name:
                return ev
    raise AssertionError(f"watch ended before {want} {name}")


async def _patch_status_as_node(node: ApiClient, name: str, namespace: str) -> None:
    """The Node authorizer learns pod->node edges from its own informer: allow it a moment."""
    deadline = time.monotonic() + 10
    patch = {"status": {"message": f"seen by {NODE}"}}
    while True:
        try:
            await node.patch_status(PODS, name, patch, namespace=namespace)
            return
        except Forbidden:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_node_watches_only_its_own_pods(
    admin: ApiClient, node_client: ApiClient, namespace: str
) -> None:
    with pytest.raises(Forbidden) as info:
        await node_client.list(PODS)
    assert info.value.code == 403 and str(info.value).startswith("pods in all namespaces: ")

    own = await node_client.list(NODES, field_selector={"metadata.name": NODE})
    assert all(n["metadata"]["name"] == NODE for n in own.items)

    await _wait_for_default_sa(admin, namespace)
    try:
        await _own_pod_events(admin, node_client, namespace)
    finally:
        for name in ("mine", "elsewhere"):
            with contextlib.suppress(NotFound):
                await admin.delete(PODS, name, namespace=namespace, grace_period_seconds=0)


async def _own_pod_events(admin: ApiClient, node_client: ApiClient, namespace: str) -> None:
    events = list_then_watch(node_client, PODS, field_selector={"spec.nodeName": NODE})
    async with aclosing(events):
        first = await asyncio.wait_for(anext(events), TIMEOUT)
        assert first.type == SYNC
        assert all(p["spec"]["nodeName"] == NODE for p in first.items)

        await admin.create(PODS, pod("elsewhere", namespace, "some-other-node"))
        await admin.create(PODS, pod("mine", namespace, NODE))
        added = await _next(events, "ADDED", "mine")
        assert added.object is not None and added.object["spec"]["nodeName"] == NODE

        await _patch_status_as_node(node_client, "mine", namespace)
        modified = await _next(events, "MODIFIED", "mine")
        assert modified.object is not None
        assert modified.object["status"]["message"] == f"seen by {NODE}"

        await admin.delete(PODS, "mine", namespace=namespace, grace_period_seconds=0)
        await _next(events, "DELETED", "mine")
