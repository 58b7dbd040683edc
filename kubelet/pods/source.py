"""The pods this node should run, from the apiserver (pods bound to this node only), handed to
the pod workers as updates and removals. Static pods from a manifest dir are not supported yet.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Protocol

from kubelet.apiserver import PODS, SYNC, ApiClient, list_then_watch
from kubelet.apiserver.errors import JsonObject
from kubelet.pods.model import PodUID


class PodSink(Protocol):
    def update(self, pod: JsonObject) -> None: ...
    def remove(self, uid: PodUID) -> None: ...
    def known(self) -> set[PodUID]: ...


class PodSource:
    """Watches `spec.nodeName=<node>` and feeds the sink; resumes and relists via the informer."""

    def __init__(self, client: ApiClient, node: str, sink: PodSink) -> None:
        self._client = client
        self._node = node
        self._sink = sink

    async def run(self) -> None:
        events = list_then_watch(self._client, PODS, field_selector={"spec.nodeName": self._node})
        async with aclosing(events) as stream:
            async for event in stream:
                if event.type == SYNC:
                    present = set()
                    for pod in event.items:
                        present.add(PodUID(pod["metadata"]["uid"]))
                        self._sink.update(pod)
                    for uid in self._sink.known() - present:
                        self._sink.remove(uid)
                elif event.object is not None:
                    uid = PodUID(event.object["metadata"]["uid"])
                    if event.type == "DELETED":
                        self._sink.remove(uid)
                    else:
                        self._sink.update(event.object)
