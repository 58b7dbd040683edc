"""Small fakes the executor and worker tests share: an event recorder and a volume manager
that only remember what they were asked to do. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubelet import events as ev


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.PodEvent] = []

    def record(self, event: ev.PodEvent) -> None:
        self.events.append(event)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


@dataclass
class Volumes:
    set_up: list[str] = field(default_factory=list)
    torn_down: list[str] = field(default_factory=list)

    async def setup(self, pod: Any) -> None:
        self.set_up.append(pod["metadata"]["uid"])

    def mounts(self, pod: Any, container: Any) -> list[Any]:
        return []

    async def teardown(self, pod_uid: str) -> None:
        self.torn_down.append(pod_uid)
