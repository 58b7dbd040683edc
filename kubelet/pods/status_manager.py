"""Pod status writes: one versioned status per pod, coalesced (only the newest is sent), written
as soon as it changes (a static pod's to its mirror pod). Computes no status itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from kube.apiserver import PODS, ApiClient, ApiError, Conflict, NotFound, PatchType
from kube.jsontypes import JsonObject
from kubelet.pods.podstatus import written_conditions

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    namespace: str
    name: str
    uid: str
    status: JsonObject
    version: int = 0
    written_version: int = 0
    written: JsonObject | None = None


def _comparable(status: JsonObject) -> JsonObject:
    """Status without the heartbeat-like times that change on every derivation."""
    conds = [
        {k: v for k, v in c.items() if k != "lastProbeTime"} for c in status.get("conditions", [])
    ]
    return {**status, "conditions": conds}


class StatusManager:
    """Holds the latest status of every pod on the node and a writer loop that sends it."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._entries: dict[str, _Entry] = {}
        self._dirty: asyncio.Queue[str] = asyncio.Queue()
        self._mirrors: dict[str, str | None] = {}
        """Static pod UID -> its mirror pod's UID (None: no mirror yet, hold the status)."""

    def get(self, uid: str) -> JsonObject | None:
        e = self._entries.get(uid)
        return e.status if e else None

    def set(self, *, namespace: str, name: str, uid: str, status: JsonObject) -> bool:
        """Record a new status; returns True when it differs from the last one set."""
        e = self._entries.get(uid)
        if e is not None and _comparable(e.status) == _comparable(status):
            return False
        if e is None:
            e = self._entries[uid] = _Entry(namespace, name, uid, status)
        e.status = status
        e.version += 1
        self._dirty.put_nowait(uid)
        return True

    def forget(self, uid: str) -> None:
        self._entries.pop(uid, None)
        self._mirrors.pop(uid, None)

    def set_mirror(self, uid: str, mirror_uid: str | None) -> None:
        """Write static pod `uid`'s status to the mirror pod `mirror_uid` (same name and
        namespace); None holds it until a mirror exists. A new mirror gets the whole status."""
        if uid in self._mirrors and self._mirrors[uid] == mirror_uid:
            return
        self._mirrors[uid] = mirror_uid
        e = self._entries.get(uid)
        if e is not None and mirror_uid is not None:
            e.written, e.written_version = None, 0
            self._dirty.put_nowait(uid)

    async def flush(self, uid: str) -> None:
        """Write `uid`'s newest status now if it has not been written (used before deleting)."""
        e = self._entries.get(uid)
        if e is not None and e.written_version < e.version:
            await self._write(e)

    async def _write(self, e: _Entry) -> None:
        version, status = e.version, e.status
        target = self._mirrors.get(e.uid, e.uid)
        if target is None:
            return  # a static pod without a mirror pod yet: set_mirror queues it again
        if e.written is not None and _comparable(e.written) == _comparable(status):
            e.written_version = version
            return
        body = dict(status)
        if "conditions" in body:
            body["conditions"] = written_conditions(body["conditions"])
        patch = {"metadata": {"uid": target}, "status": body}
        try:
            await self._client.patch(
                PODS,
                e.name,
                patch,
                namespace=e.namespace,
                subresource="status",
                patch_type=PatchType.STRATEGIC,
            )
        except (NotFound, Conflict):
            if e.uid in self._mirrors:
                log.info(
                    "mirror pod %s/%s uid=%s is gone; holding status", e.namespace, e.name, target
                )
                if self._mirrors[e.uid] == target:
                    self._mirrors[e.uid] = None
                return
            log.info("pod %s/%s uid=%s is gone; dropping its status", e.namespace, e.name, e.uid)
            self._entries.pop(e.uid, None)
            return
        e.written, e.written_version = status, version

    async def run(self) -> None:
        while True:
            uid = await self._dirty.get()
            e = self._entries.get(uid)
            if e is None or e.written_version >= e.version:
                continue
            try:
                await self._write(e)
            except ApiError as err:
                log.warning(
                    "status of pod %s/%s not written: %s; retrying", e.namespace, e.name, err
                )
                await asyncio.sleep(1)
                self._dirty.put_nowait(uid)
