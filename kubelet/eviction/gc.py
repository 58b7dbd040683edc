"""Node-level reclaim through CRI: unused images (never one a container uses, the sandbox image,
or a pinned one; oldest first, not younger than imageMinimumGCAge) and dead containers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError

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


async def remove_dead_containers(runtime: RuntimeClient, active: set[str]) -> int:
    """Exited containers: all of pods no longer active, else all but the newest per container
    name (upstream's default of one dead container kept per container). Returns how many."""
    containers = await runtime.list_containers()
    newest: dict[tuple[str, str], int] = {}
    for c in containers:
        key = (c.labels.get("io.kubernetes.pod.uid", ""), c.metadata.name)
        newest[key] = max(newest.get(key, -1), c.metadata.attempt)
    removed = 0
    for c in containers:
        if c.state != api.CONTAINER_EXITED:
            continue
        uid = c.labels.get("io.kubernetes.pod.uid", "")
        if uid in active and newest[(uid, c.metadata.name)] == c.metadata.attempt:
            continue
        try:
            await runtime.remove_container(c.id)
            removed += 1
        except CRIError as e:
            log.warning("container GC: removing %s failed: %s", c.id, e)
    return removed
