"""Reflector: list, SYNC, watch from the list's version; resume, relist on 410, cancel cleanly.
Runs against MockTransport with recorded (not real) back-off sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

import httpx
import pytest

from kube.apiserver import (
    PODS,
    SYNC,
    ApiClient,
    Forbidden,
    InformerEvent,
    Reflector,
    Store,
    list_then_watch,
    watch_forever,
)
from kube.apiserver.requests import WatchEvent

from .fakes import (
    FakeApi,
    Stream,
    bookmark,
    error_event,
    event,
    failure,
    listing,
    obj,
    watching,
)

OWN = {"spec.nodeName": "n1"}


def reflector(fake: FakeApi, client: ApiClient) -> Reflector:
    return Reflector(client, PODS, field_selector=OWN, sleep=fake.sleep, rnd=lambda: 0.0)


async def take(events: AsyncGenerator[InformerEvent, None], n: int) -> list[tuple[str, str]]:
    """(type, name) of the next n events; SYNC shows the sorted names of its items."""
    out = []
    for _ in range(n):
        ev = await anext(events)
        if ev.type == SYNC:
            out.append((SYNC, ",".join(sorted(i["metadata"]["name"] for i in ev.items))))
        else:
            assert ev.object is not None
            out.append((ev.type, ev.object["metadata"]["name"]))
    return out


def names(store: Store) -> list[str]:
    return sorted(o["metadata"]["name"] for o in store.values())


async def test_list_then_watch_resumes_from_last_event() -> None:
    fake = FakeApi(
        listing([obj("a", "5")], "10"),
        watching(Stream([event("ADDED", "b", "11"), event("DELETED", "a", "12")])),
        watching(Stream([event("MODIFIED", "b", "13")], hang=True)),
    )
    async with fake.client() as client:
        r = reflector(fake, client)
        async with aclosing(r.events()) as events:
            assert await take(events, 4) == [
                (SYNC, "a"),
                ("ADDED", "b"),
                ("DELETED", "a"),
                ("MODIFIED", "b"),
            ]
    assert fake.params(0) == {"fieldSelector": "spec.nodeName=n1", "limit": "500"}
    first, second = fake.params(1), fake.params(2)
    assert first["resourceVersion"] == "10" and first["fieldSelector"] == "spec.nodeName=n1"
    assert first["allowWatchBookmarks"] == "true" and first["watch"] == "true"
    assert 300 <= int(first["timeoutSeconds"]) <= 600
    assert second["resourceVersion"] == "12"
    assert names(r.store) == ["b"] and r.resource_version == "13"
    assert fake.sleeps == []


async def test_resume_from_bookmark_version() -> None:
    fake = FakeApi(
        listing([], "10"),
        watching(Stream([event("ADDED", "a", "11"), bookmark("20")])),
        watching(Stream([event("ADDED", "b", "21")], hang=True)),
    )
    async with fake.client() as client, aclosing(reflector(fake, client).events()) as events:
        assert await take(events, 3) == [(SYNC, ""), ("ADDED", "a"), ("ADDED", "b")]
    assert fake.params(2)["resourceVersion"] == "20"


@pytest.mark.parametrize("how", ["error-event", "http-410"])
async def test_gone_relists_and_syncs_the_new_set(how: str) -> None:
    gone = (
        watching(Stream([event("ADDED", "b", "11"), error_event(410, "Expired", "too old")]))
        if how == "error-event"
        else failure(410, "Gone", "too old resource version")
    )
    fake = FakeApi(
        listing([obj("a", "5")], "10"),
        gone,
        listing([obj("c", "40")], "50"),
        watching(Stream([event("ADDED", "d", "51")], hang=True)),
    )
    async with fake.client() as client:
        r = reflector(fake, client)
        async with aclosing(r.events()) as events:
            seen = await take(events, 3 if how == "http-410" else 4)
    expected = [(SYNC, "a"), (SYNC, "c"), ("ADDED", "d")]
    if how == "error-event":
        expected.insert(1, ("ADDED", "b"))
    assert seen == expected
    relist = fake.params(2)
    assert "resourceVersion" not in relist and relist["fieldSelector"] == "spec.nodeName=n1"
    assert fake.params(3)["resourceVersion"] == "50"
    assert names(r.store) == ["c", "d"]
    # relist at once after events; pause first if the watch expired straight after a list
    assert len(fake.sleeps) == (0 if how == "error-event" else 1)


async def test_dropped_connection_resumes_without_relist() -> None:
    fake = FakeApi(
        listing([], "10"),
        watching(Stream([event("ADDED", "a", "11")], error=httpx.ReadError("reset"))),
        httpx.ConnectError("refused"),
        httpx.ConnectError("refused"),
        httpx.ConnectError("refused"),
        watching(Stream([event("ADDED", "b", "12")], hang=True)),
    )
    async with fake.client(attempts=2) as client:
        r = reflector(fake, client)
        async with aclosing(r.events()) as events:
            assert await take(events, 3) == [(SYNC, ""), ("ADDED", "a"), ("ADDED", "b")]
    methods = [dict(req.url.params).get("watch", "list") for req in fake.requests]
    assert methods == ["list", "true", "true", "true", "true", "true"]
    assert [fake.params(i)["resourceVersion"] for i in range(1, 6)] == ["10"] + ["11"] * 4
    # reflector pause, client retry, client gives up -> reflector pause, client retry
    assert len(fake.sleeps) == 4


async def test_paginated_list_syncs_everything() -> None:
    fake = FakeApi(
        listing([obj("a", "1")], "10", token="t"),
        listing([obj("b", "2")], "10"),
        watching(Stream([event("ADDED", "c", "11")], hang=True)),
    )
    async with fake.client() as client:
        r = reflector(fake, client)
        async with aclosing(r.events()) as events:
            assert await take(events, 2) == [(SYNC, "a,b"), ("ADDED", "c")]
    assert fake.params(1)["continue"] == "t"
    assert fake.params(2)["resourceVersion"] == "10"


async def test_forbidden_is_raised_not_retried() -> None:
    fake = FakeApi(failure(403, "Forbidden", "node n1 can only list its own pods"))
    async with fake.client() as client:
        with pytest.raises(Forbidden, match="pods in all namespaces: forbidden"):
            await anext(list_then_watch(client, PODS))
    assert len(fake.requests) == 1


async def test_list_server_errors_back_off_and_retry() -> None:
    fake = FakeApi(
        failure(503, "ServiceUnavailable"),
        failure(503, "ServiceUnavailable"),
        listing([obj("a", "1")], "10"),
        watching(Stream([], hang=True)),
    )
    async with fake.client(attempts=1) as client:
        r = reflector(fake, client)
        async with aclosing(r.events()) as events:
            assert await take(events, 1) == [(SYNC, "a")]
    assert len(fake.sleeps) == 2


async def test_watch_ending_without_events_backs_off() -> None:
    fake = FakeApi(
        listing([], "10"),
        watching(Stream([])),
        watching(Stream([event("ADDED", "a", "11")], hang=True)),
    )
    async with fake.client() as client:
        r = reflector(fake, client)
        async with aclosing(r.events()) as events:
            assert await take(events, 2) == [(SYNC, ""), ("ADDED", "a")]
    assert len(fake.sleeps) == 1 and fake.params(2)["resourceVersion"] == "10"


async def test_cancellation_propagates_and_closes_the_stream() -> None:
    stream = Stream([event("ADDED", "a", "11")], hang=True)
    fake = FakeApi(listing([], "10"), watching(stream))
    seen: list[InformerEvent] = []
    got_one = asyncio.Event()

    async def on_event(ev: InformerEvent) -> None:
        seen.append(ev)
        if ev.type == "ADDED":
            got_one.set()

    async with fake.client() as client:
        task = asyncio.create_task(watch_forever(client, PODS, on_event, field_selector=OWN))
        await asyncio.wait_for(got_one.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stream.closed
    assert [e.type for e in seen] == [SYNC, "ADDED"]


def test_store_keys_and_replace() -> None:
    store = Store()
    store.apply(WatchEvent("ADDED", obj("a", "1")))
    store.apply(WatchEvent("MODIFIED", obj("a", "2", namespace="other")))
    assert ("default", "a") in store and ("other", "a") in store and len(store) == 2
    removed = store.replace([obj("b", "3")])
    assert sorted(o["metadata"]["namespace"] for o in removed) == ["default", "other"]
    store.apply(WatchEvent("DELETED", obj("b", "4")))
    store.apply(WatchEvent("DELETED", obj("zzz", "5")))
    assert len(store) == 0
    by_uid = Store(key=lambda o: o["metadata"]["uid"])
    by_uid.apply(WatchEvent("ADDED", {"metadata": {"uid": "u1", "name": "a"}}))
    assert by_uid.get("u1") == {"metadata": {"uid": "u1", "name": "a"}}
