"""The pods this node should run: the apiserver source (pods bound to this node, mirror pods set
aside) and the merge of every source into one stream for the pod workers, deduped by UID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import aclosing
from typing import Protocol

from kube.apiserver import PODS, SYNC, ApiClient, list_then_watch
from kube.apiserver.errors import JsonObject
from kubelet.pods.model import PodUID

log = logging.getLogger(__name__)

CONFIG_MIRROR = "kubernetes.io/config.mirror"
"""The annotation that marks a mirror pod (its value: the static pod's config hash)."""
API_SOURCE = "api"
FILE_SOURCE = "file"


class PodSink(Protocol):
    def update(self, pod: JsonObject) -> None: ...
    def remove(self, uid: PodUID) -> None: ...
    def known(self) -> set[PodUID]: ...


class MirrorSink(Protocol):
    """Who keeps the mirror pods: told what the node's pod watch shows of them."""

    def mirrors_synced(self, pods: list[JsonObject]) -> None: ...
    def mirror_updated(self, pod: JsonObject) -> None: ...
    def mirror_deleted(self, pod: JsonObject) -> None: ...


def pod_annotations(pod: JsonObject) -> dict[str, str]:
    meta = pod.get("metadata") or {}
    value = meta.get("annotations") or {}
    return value if isinstance(value, dict) else {}


def is_mirror_pod(pod: JsonObject) -> bool:
    """A mirror pod stands in the apiserver for a static pod: it is never run itself."""
    return CONFIG_MIRROR in pod_annotations(pod)


class PodSource:
    """Watches `spec.nodeName=<node>` and feeds the sink; resumes and relists via the informer.
    Mirror pods go to `mirrors` (if given) instead of the sink."""

    def __init__(
        self, client: ApiClient, node: str, sink: PodSink, mirrors: MirrorSink | None = None
    ) -> None:
        self._client = client
        self._node = node
        self._sink = sink
        self._mirrors = mirrors
        self.synced = asyncio.Event()
        """Set once the first full list has reached the sink: the node's API pods are known."""

    async def run(self) -> None:
        events = list_then_watch(self._client, PODS, field_selector={"spec.nodeName": self._node})
        async with aclosing(events) as stream:
            async for event in stream:
                if event.type == SYNC:
                    self._sync(event.items)
                elif event.object is not None:
                    self._event(event.type, event.object)

    def _sync(self, items: Sequence[JsonObject]) -> None:
        present: set[PodUID] = set()
        mirrors = []
        for pod in items:
            if is_mirror_pod(pod):
                mirrors.append(pod)
                continue
            present.add(PodUID(pod["metadata"]["uid"]))
            self._sink.update(pod)
        for uid in self._sink.known() - present:
            self._sink.remove(uid)
        if self._mirrors is not None:
            self._mirrors.mirrors_synced(mirrors)
        self.synced.set()

    def _event(self, kind: str, pod: JsonObject) -> None:
        if is_mirror_pod(pod):
            if self._mirrors is None:
                return
            if kind == "DELETED":
                self._mirrors.mirror_deleted(pod)
            else:
                self._mirrors.mirror_updated(pod)
            return
        uid = PodUID(pod["metadata"]["uid"])
        if kind == "DELETED":
            self._sink.remove(uid)
        else:
            self._sink.update(pod)


class PodConfig:
    """Merges named sources (api, file) into one PodSink. A UID belongs to the source that sent
    it first; the same UID from another source is ignored until its owner removes it."""

    def __init__(self, sink: PodSink) -> None:
        self._sink = sink
        self._owner: dict[PodUID, str] = {}

    def source(self, name: str) -> SourceView:
        return SourceView(self, name)

    def owner(self, uid: PodUID) -> str | None:
        return self._owner.get(uid)

    def update_from(self, source: str, pod: JsonObject) -> None:
        uid = PodUID(pod["metadata"]["uid"])
        owner = self._owner.setdefault(uid, source)
        if owner != source:
            log.warning("pod uid=%s from source %s ignored: source %s has it", uid, source, owner)
            return
        self._sink.update(pod)

    def remove_from(self, source: str, uid: PodUID) -> None:
        if self._owner.get(uid) != source:
            return
        del self._owner[uid]
        self._sink.remove(uid)

    def known_from(self, source: str) -> set[PodUID]:
        return {uid for uid, owner in self._owner.items() if owner == source}


class SourceView:
    """One source's PodSink onto the merged stream: it sees and removes only its own pods."""

    def __init__(self, config: PodConfig, name: str) -> None:
        self._config = config
        self.name = name

    def update(self, pod: JsonObject) -> None:
        self._config.update_from(self.name, pod)

    def remove(self, uid: PodUID) -> None:
        self._config.remove_from(self.name, uid)

    def known(self) -> set[PodUID]:
        return self._config.known_from(self.name)


class ObservedSink:
    """A PodSink that also shows every pod update to `observe` (the volume manager, which then
    refreshes the volumes of pods it did not set up itself: those of an earlier agent)."""

    def __init__(self, sink: PodSink, observe: Callable[[JsonObject], None]) -> None:
        self._sink = sink
        self._observe = observe

    def update(self, pod: JsonObject) -> None:
        self._sink.update(pod)
        self._observe(pod)

    def remove(self, uid: PodUID) -> None:
        self._sink.remove(uid)

    def known(self) -> set[PodUID]:
        return self._sink.known()
