"""The httpx layer: headers, verbs, retries only where resending is safe, pagination, watch.
Runs against MockTransport; no network, no real sleeping.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest
import yaml

from kube.apiserver import (
    CONFIGMAPS,
    NODES,
    PODS,
    ApiClient,
    ApiConnectionError,
    Forbidden,
    Gone,
    NotFound,
    PatchType,
    Preconditions,
    ServerError,
)
from kube.apiserver.client import DEFAULT_USER_AGENT

from .fakes import (
    FakeApi,
    Stream,
    error_event,
    event,
    failure,
    listing,
    obj,
    watching,
)

NODE = {"kind": "Node", "metadata": {"name": "n1"}}


async def test_get_sends_user_agent_and_accept() -> None:
    fake = FakeApi(httpx.Response(200, json=NODE))
    async with fake.client() as client:
        assert await client.get(NODES, "n1") == NODE
    req = fake.requests[0]
    assert (req.method, req.url.path) == ("GET", "/api/v1/nodes/n1")
    assert req.headers["User-Agent"] == DEFAULT_USER_AGENT
    assert DEFAULT_USER_AGENT.startswith("pykubelet/0.1.0 (")
    assert req.headers["Accept"] == "application/json"


async def test_not_found_names_the_object() -> None:
    fake = FakeApi(failure(404, "NotFound", 'configmaps "cfg" not found'))
    async with fake.client() as client:
        with pytest.raises(NotFound, match=r'^configmaps "cfg" in namespace "ns": not found$'):
            await client.get(CONFIGMAPS, "cfg", namespace="ns")
    assert fake.sleeps == []


async def test_idempotent_get_retries_5xx_and_connection_errors() -> None:
    fake = FakeApi(
        failure(503, "ServiceUnavailable"),
        httpx.ReadError("reset"),
        httpx.Response(200, json=NODE),
    )
    async with fake.client(attempts=3) as client:
        assert await client.get(NODES, "n1") == NODE
    assert fake.sleeps == [0.1, 0.2]  # rnd 0.5 x (0.2, 0.4)


async def test_retries_give_up_with_the_last_error() -> None:
    fake = FakeApi(*[failure(500, "InternalError", "boom")] * 3)
    async with fake.client(attempts=3) as client:
        with pytest.raises(ServerError, match='nodes "n1": internal error: boom'):
            await client.get(NODES, "n1")
    assert len(fake.requests) == 3


async def test_post_is_not_resent_after_5xx_or_a_read_error() -> None:
    fake = FakeApi(failure(500, "InternalError"), httpx.ReadError("reset"))
    cm = obj("c", "", namespace="ns")
    async with fake.client() as client:
        with pytest.raises(ServerError):
            await client.create(CONFIGMAPS, cm)
        with pytest.raises(ApiConnectionError, match="ReadError: reset") as info:
            await client.create(CONFIGMAPS, cm)
    assert isinstance(info.value.__cause__, httpx.ReadError)
    assert info.value.retryable and info.value.code == 0
    assert len(fake.requests) == 2 and fake.sleeps == []


async def test_post_is_resent_when_never_sent_or_throttled() -> None:
    fake = FakeApi(
        httpx.ConnectError("refused"),
        failure(429, "TooManyRequests", "slow down", **{"Retry-After": "2"}),
        httpx.Response(201, json={"ok": True}),
    )
    async with fake.client() as client:
        assert await client.create(CONFIGMAPS, obj("c", "", namespace="ns")) == {"ok": True}
    assert fake.sleeps == [0.1, 2.0]


async def test_list_follows_continue_tokens() -> None:
    fake = FakeApi(
        listing([obj("a", "1")], "10", token="t1"),
        listing([obj("b", "2")], "10"),
    )
    async with fake.client() as client:
        result = await client.list(
            PODS, field_selector={"spec.nodeName": "n1"}, resource_version="0", limit=1
        )
    assert [i["metadata"]["name"] for i in result.items] == ["a", "b"]
    assert result.items[0]["kind"] == "Pod"
    assert result.resource_version == "10"
    assert fake.params(0) == {
        "fieldSelector": "spec.nodeName=n1",
        "resourceVersion": "0",
        "limit": "1",
    }
    assert fake.params(1) == {"fieldSelector": "spec.nodeName=n1", "limit": "1", "continue": "t1"}


async def test_list_expired_continue_lists_whole() -> None:
    fake = FakeApi(
        listing([obj("a", "1")], "10", token="t1"),
        failure(410, "Expired", "continue token expired"),
        listing([obj("a", "1"), obj("b", "2")], "12"),
    )
    async with fake.client() as client:
        result = await client.list(PODS, namespace="default", limit=1)
    assert len(result.items) == 2 and result.resource_version == "12"
    assert fake.params(2) == {}


async def test_writes() -> None:
    fake = FakeApi(*[httpx.Response(200, json={})] * 4)
    async with fake.client() as client:
        await client.patch(CONFIGMAPS, "c", {"data": {"a": "1"}}, namespace="ns")
        await client.patch_status(
            NODES, "n1", {"status": {}}, patch_type=PatchType.STRATEGIC, field_manager="pk"
        )
        await client.replace_status(PODS, obj("web", "5", namespace="ns"))
        await client.delete(
            PODS,
            "web",
            namespace="ns",
            grace_period_seconds=30,
            preconditions=Preconditions(uid="u"),
        )
    patch, status_patch, put, delete = fake.requests
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert status_patch.url.path == "/api/v1/nodes/n1/status"
    assert status_patch.url.params["fieldManager"] == "pk"
    assert (put.method, put.url.path) == ("PUT", "/api/v1/namespaces/ns/pods/web/status")
    assert delete.method == "DELETE"
    assert json.loads(delete.content)["preconditions"] == {"uid": "u"}
    assert json.loads(delete.content)["gracePeriodSeconds"] == 30


async def test_per_request_timeout() -> None:
    fake = FakeApi(httpx.Response(200, json=NODE), httpx.Response(200, json=NODE))
    async with fake.client() as client:
        await client.get(NODES, "n1", request_timeout=2.5)
        await client.get(NODES, "n1")
    assert fake.requests[0].extensions["timeout"]["read"] == 2.5
    assert fake.requests[1].extensions["timeout"]["read"] == 30.0


async def test_watch_yields_events_and_closes_the_stream() -> None:
    stream = Stream([event("ADDED", "a", "11"), event("MODIFIED", "a", "12")], hang=True)
    fake = FakeApi(watching(stream))
    async with fake.client() as client:
        async with aclosing(
            client.watch(
                PODS, field_selector="spec.nodeName=n1", resource_version="10", timeout_seconds=60
            )
        ) as events:
            seen = [await anext(events), await anext(events)]
        assert stream.closed
    assert [(t, o["metadata"]["resourceVersion"]) for t, o in seen] == [
        ("ADDED", "11"),
        ("MODIFIED", "12"),
    ]
    assert fake.params(0) == {
        "watch": "true",
        "fieldSelector": "spec.nodeName=n1",
        "resourceVersion": "10",
        "timeoutSeconds": "60",
        "allowWatchBookmarks": "true",
    }
    assert fake.requests[0].extensions["timeout"]["read"] == 90.0


async def test_watch_error_event_is_raised() -> None:
    stream = Stream([event("ADDED", "a", "11"), error_event(410, "Expired", "too old")])
    fake = FakeApi(watching(stream))
    async with fake.client() as client:
        events = []
        with pytest.raises(Gone, match=r"^pods in all namespaces: expired: too old$"):
            async for ev in client.watch(PODS):
                events.append(ev)
    assert len(events) == 1 and stream.closed


async def test_watch_open_failure_and_dropped_stream() -> None:
    dropped = Stream([event("ADDED", "a", "11")], error=httpx.RemoteProtocolError("peer closed"))
    fake = FakeApi(failure(403, "Forbidden", "no"), watching(dropped))
    async with fake.client() as client:
        with pytest.raises(Forbidden):
            await anext(client.watch(PODS))
        with pytest.raises(ApiConnectionError, match="peer closed"):
            async for _ in client.watch(PODS):
                pass
    assert dropped.closed


async def test_from_kubeconfig_sends_the_token(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://api.test"}}],
                "users": [{"name": "u", "user": {"token": "tok"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    fake = FakeApi(httpx.Response(200, json=NODE))
    client = ApiClient.from_kubeconfig(path, transport=httpx.MockTransport(fake.handler))
    async with client:
        await client.get(NODES, "n1")
    assert fake.requests[0].headers["Authorization"] == "Bearer tok"
    assert str(fake.requests[0].url) == "https://api.test/api/v1/nodes/n1"
