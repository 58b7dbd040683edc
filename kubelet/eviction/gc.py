"""Node-level reclaim through CRI: unused images (never one a container uses, the sandbox image,
or a pinned one; oldest first, not younger than imageMinimumGCAge) and dead containers and
sandboxes (containergc's plan).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError
from kubelet.eviction import containergc

log = logging.getLogger(__name__)


@dataclass
class ImageGC:
    """Image garbage collection with upstream's rules; remembers when it first saw each image."""

    runtime: RuntimeClient
    min_age: float = 120.0
    clock: Callable[[], float] = time.monotonic
    first_seen: dict[str, float] = field(default_factory=dict)
    sandbox_image: str = ""

    async def _sandbox_image(self) -> str:
        """containerd's configured sandbox image (Status verbose info), never collected."""
        if not self.sandbox_image:
            try:
                info = (await self.runtime.status(verbose=True)).info
                self.sandbox_image = str(json.loads(info.get("config", "{}")).get("sandboxImage"))
            except (CRIError, ValueError, AttributeError) as e:
                log.debug("sandbox image unknown: %s", e)
        return self.sandbox_image

    async def unused(self) -> list[api.Image]:
        """Images no container uses, oldest first-seen first."""
        images = await self.runtime.list_images()
        containers = await self.runtime.list_containers()
        in_use = {c.image_ref for c in containers} | {c.image.image for c in containers}
        sandbox = await self._sandbox_image()
        now = self.clock()
        for img in images:
            self.first_seen.setdefault(img.id, now)
        out = [
            img
            for img in images
            if img.id not in in_use
            and not in_use.intersection(img.repo_tags)
            and not in_use.intersection(img.repo_digests)
            and sandbox not in img.repo_tags
            and not img.pinned
        ]
        return sorted(out, key=lambda img: self.first_seen[img.id])

    async def free(self, want: int) -> int:
        """Remove unused images old enough until `want` bytes are freed; returns bytes freed."""
        freed = 0
        now = self.clock()
        for img in await self.unused():
            if freed >= want:
                break
            if now - self.first_seen[img.id] < self.min_age:
                continue
            try:
                await self.runtime.remove_image(img.id)
            except CRIError as e:
                log.warning("image GC: removing %s failed: %s", img.repo_tags or img.id, e)
                continue
            self.first_seen.pop(img.id, None)
            freed += img.size
            log.info("image GC: removed %s (%d bytes)", list(img.repo_tags) or img.id, img.size)
        return freed


async def collect_containers(
    runtime: RuntimeClient,
    *,
    keep: Callable[[str], bool],
    sources_ready: bool,
    policy: containergc.Policy = containergc.DEFAULT_POLICY,
    now_ns: Callable[[], int] = time.time_ns,
) -> containergc.Plan:
    """Remove what containergc.plan picks from the runtime's containers and sandboxes (a
    failed removal is logged and retried next time); returns the plan."""
    containers = await runtime.list_containers()
    sandboxes = await runtime.list_pod_sandbox()
    todo = containergc.plan(
        containers,
        sandboxes,
        keep=keep,
        sources_ready=sources_ready,
        now_ns=now_ns(),
        policy=policy,
    )
    for cid in todo.containers:
        try:
            await runtime.remove_container(cid)
        except CRIError as e:
            log.warning("container GC: removing container %s failed: %s", cid, e)
    for sid in todo.sandboxes:
        try:
            await runtime.remove_pod_sandbox(sid)
        except CRIError as e:
            log.warning("container GC: removing sandbox %s failed: %s", sid, e)
    if todo.containers or todo.sandboxes:
        log.info(
            "container GC: removed %d dead containers, %d dead sandboxes",
            len(todo.containers),
            len(todo.sandboxes),
        )
    return todo


async def container_gc_loop(
    runtime: RuntimeClient,
    *,
    keep: Callable[[str], bool],
    ready: Callable[[], Awaitable[object]],
    every: float = containergc.GC_PERIOD_SECONDS,
) -> None:
    """Periodic container GC (upstream: every minute, whatever the disk): first once every pod
    source is read and the runtime relisted, so a restarted agent knows which pods are gone."""
    await ready()
    while True:
        try:
            await collect_containers(runtime, keep=keep, sources_ready=True)
        except CRIError as e:
            log.warning("container GC failed: %s", e)
        await asyncio.sleep(every)
