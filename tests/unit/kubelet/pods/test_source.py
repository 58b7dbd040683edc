"""The apiserver pod source: first list marks the node's pods known, updates (the
ephemeralcontainers subresource included) reach the sink, and the observing sink tee."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kube.apiserver import SYNC
from kube.apiserver.informer import InformerEvent
from kubelet.pods import source as source_mod
from kubelet.pods.model import PodUID
from kubelet.pods.source import ObservedSink, PodSource
from kubelet.pods.workers import _node_relevant

Json = dict[str, Any]


class Sink:
    def __init__(self) -> None:
        self.pods: dict[PodUID, Json] = {}
        self.updates: list[Json] = []

    def update(self, pod: Json) -> None:
        self.pods[PodUID(pod["metadata"]["uid"])] = pod
        self.updates.append(pod)

    def remove(self, uid: PodUID) -> None:
        self.pods.pop(uid, None)

    def known(self) -> set[PodUID]:
        return set(self.pods)


def _pod(uid: str, **spec: Any) -> Json:
    return {
        "metadata": {"uid": uid, "name": uid, "namespace": "ns", "resourceVersion": "1"},
        "spec": {"containers": [{"name": "c", "image": "img"}], **spec},
    }


def _debugged(pod: Json) -> Json:
    """The pod as the watch shows it after a PATCH of its ephemeralcontainers subresource."""
    eph = [{"name": "debugger", "image": "busybox:1.35", "targetContainerName": "c"}]
    meta = {**pod["metadata"], "resourceVersion": "2"}
    return {**pod, "metadata": meta, "spec": {**pod["spec"], "ephemeralContainers": eph}}


async def test_first_list_sets_synced_and_updates_reach_the_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = _pod("a")
    events = [
        InformerEvent(SYNC, items=(a,)),
        InformerEvent("MODIFIED", object=_debugged(a)),
    ]
    seen_synced: list[bool] = []
    src: PodSource

    async def fake_watch(*args: Any, **kw: Any) -> AsyncIterator[InformerEvent]:
        for e in events:
            yield e
            seen_synced.append(src.synced.is_set())

    monkeypatch.setattr(source_mod, "list_then_watch", fake_watch)
    sink = Sink()
    src = PodSource(object(), "node-1", sink)  # type: ignore[arg-type]
    assert not src.synced.is_set()
    await src.run()
    assert seen_synced == [True, True]
    assert [p["metadata"]["resourceVersion"] for p in sink.updates] == ["1", "2"]
    assert sink.pods[PodUID("a")]["spec"]["ephemeralContainers"][0]["name"] == "debugger"


def test_ephemeral_containers_change_wakes_the_worker() -> None:
    a = _pod("a")
    assert _node_relevant(a) != _node_relevant(_debugged(a))
    only_rv = {**a, "metadata": {**a["metadata"], "resourceVersion": "9"}}
    assert _node_relevant(a) == _node_relevant(only_rv)


def test_observed_sink_passes_everything_on_and_shows_updates() -> None:
    sink = Sink()
    observed: list[Json] = []
    tee = ObservedSink(sink, observed.append)
    tee.update(_pod("a"))
    tee.update(_pod("b"))
    tee.remove(PodUID("a"))
    assert tee.known() == {PodUID("b")}
    assert [p["metadata"]["uid"] for p in observed] == ["a", "b"]
