"""The Volumes seam for the pod executor: fetches what volumes read, has them materialised off the
event loop, refreshes them while pods run, tears them down. Makes no pod lifecycle decisions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Protocol

from cri import api
from kube.apiserver import CONFIGMAPS, PODS, SECRETS, ApiError, NotFound, Resource
from kube.apiserver.requests import SERVICEACCOUNTS
from kube.jsontypes import JsonMap, JsonObject
from kubelet.pods.model import Container, Pod
from kubelet.pods.seams import VolumeSetupError
from kubelet.volumes.container_mounts import container_mounts
from kubelet.volumes.content import Sources, references, uses_pod_metadata
from kubelet.volumes.materialize import setup_volume, teardown_pod
from kubelet.volumes.paths import WRITTEN_KINDS, pod_volumes_dir, pods_dir, volume_kind
from kubelet.volumes.tokens import Clock, TokenCache

log = logging.getLogger(__name__)
REFRESH_SECONDS = 10.0
ORPHAN_SCAN_SECONDS = 30.0
Allocatable = Mapping[str, str] | Callable[[], Mapping[str, str]]
"""Node allocatable (cpu, memory quantities), or a function that reads it when needed."""


class ApiAccess(Protocol):
    """The two apiserver verbs volumes need (ApiClient has them; tests pass a fake)."""

    async def get(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> JsonObject: ...

    async def create(
        self,
        resource: Resource,
        obj: JsonObject,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> JsonObject: ...


def host_allocatable() -> dict[str, str]:
    """What a resourceFieldRef shows for a limit the container does not set: the node's size."""
    out = {"cpu": str(os.cpu_count() or 1)}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        out["memory"] = str(pages * size)
    except (ValueError, OSError):
        pass
    return out


def _ref(pod: JsonMap) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class VolumeManager:
    """Implements kubelet.pods.seams.Volumes for the node's pods."""

    def __init__(
        self,
        client: ApiAccess,
        root_dir: Path,
        *,
        refresh_every: float = REFRESH_SECONDS,
        clock: Clock = time.time,
        allocatable: Allocatable | None = None,
    ) -> None:
        self._client = client
        self.root_dir = root_dir
        self.refresh_every = refresh_every
        self._allocatable: Allocatable = (
            allocatable if allocatable is not None else host_allocatable()
        )
        """For resourceFieldRef defaults and the memory-backed emptyDir size."""
        self._tokens = TokenCache(self._request_token, clock=clock)
        self._pods: dict[str, JsonMap] = {}
        """Pods whose volumes are set up, by UID: the latest object seen (refresh reads it)."""
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    async def _request_token(self, namespace: str, sa: str, body: JsonMap) -> JsonMap:
        return await self._client.create(
            SERVICEACCOUNTS, dict(body), namespace=namespace, name=sa, subresource="token"
        )

    # ---- the Volumes seam ----------------------------------------------------------------------
    async def setup(self, pod: JsonMap) -> None:
        uid = str(pod["metadata"]["uid"])
        async with self._lock(uid):
            self._pods[uid] = pod
            await self._sync(pod, only_written=False)

    def mounts(self, pod: Pod, container: Container) -> list[api.Mount]:
        return container_mounts(self.root_dir, pod, container)

    async def teardown(self, pod_uid: str) -> None:
        async with self._lock(pod_uid):
            self._pods.pop(pod_uid, None)
            self._tokens.forget(pod_uid)
            unmounted = await asyncio.to_thread(teardown_pod, self.root_dir, pod_uid)
        self._locks.pop(pod_uid, None)
        if unmounted:
            log.info("pod uid=%s volumes unmounted: %s", pod_uid, ", ".join(unmounted))

    # ---- what the agent may also call ----------------------------------------------------------
    def observe(self, pod: JsonMap) -> None:
        """A newer pod object (labels, annotations) for pods whose volumes exist, including
        ones set up by an earlier agent process; the next refresh rewrites what changed."""
        uid = str(pod.get("metadata", {}).get("uid", ""))
        if uid in self._pods or (uid and pod_volumes_dir(self.root_dir, uid).is_dir()):
            self._pods[uid] = pod

    async def refresh_loop(self) -> None:
        """Forever: re-read sources of running pods' written volumes every `refresh_every`."""
        while True:
            await asyncio.sleep(self.refresh_every)
            await self.refresh_all()

    async def refresh_all(self) -> None:
        for uid in list(self._pods):
            try:
                await self.refresh(uid)
            except VolumeSetupError as e:
                log.warning("pod uid=%s volume refresh failed: %s", uid, e)

    async def refresh(self, uid: str) -> None:
        async with self._lock(uid):
            pod = self._pods.get(uid)
            if pod is None:
                return
            pod = await self._latest_pod(pod)
            self._pods[uid] = pod
            await self._sync(pod, only_written=True)

    async def cleanup_orphans(self, active: Collection[str] | Callable[[str], bool]) -> list[str]:
        """Unmount and remove the directories of pods that are gone (call it once the pod
        workers know every pod of the node, e.g. after the first pod list at start-up).
        `active`: the UIDs to keep, or a predicate asked at the moment each one is checked."""
        root = pods_dir(self.root_dir)
        if not root.is_dir():
            return []
        keep = active if callable(active) else active.__contains__
        removed = []
        for entry in sorted(root.iterdir()):
            uid = entry.name
            if keep(uid) or uid in self._pods or not entry.is_dir():
                continue
            async with self._lock(uid):
                await asyncio.to_thread(teardown_pod, self.root_dir, uid, remove_pod_dir=True)
            self._locks.pop(uid, None)
            removed.append(uid)
        if removed:
            log.info("removed the directories of %d orphaned pods: %s", len(removed), removed)
        return removed

    async def orphan_loop(
        self,
        ready: Callable[[], Awaitable[object]],
        active: Callable[[str], bool],
        every: float = ORPHAN_SCAN_SECONDS,
    ) -> None:
        """Forever: once `ready()` returns (the node's pods are listed and the runtime was read),
        remove the pod directories and mounts of pods that no longer exist, at once and then
        every `every` seconds, as upstream's housekeeping (cleanupOrphanedPodDirs) does.
        `active` must also keep pods the runtime still has containers or sandboxes of."""
        await ready()
        while True:
            await self.cleanup_orphans(active)
            await asyncio.sleep(every)

    def _node_allocatable(self) -> Mapping[str, str]:
        source = self._allocatable
        return source() if callable(source) else source

    # ---- internals -----------------------------------------------------------------------------
    async def _latest_pod(self, pod: JsonMap) -> JsonMap:
        """The pod object from the apiserver when its volumes show labels or annotations."""
        volumes = pod.get("spec", {}).get("volumes") or []
        if not any(uses_pod_metadata(v) for v in volumes):
            return pod
        meta = pod["metadata"]
        try:
            fresh = await self._client.get(PODS, str(meta["name"]), namespace=meta["namespace"])
        except ApiError as e:
            log.debug("pod=%s: keeping the pod object I have: %s", _ref(pod), e)
            return pod
        same = fresh.get("metadata", {}).get("uid") == meta.get("uid")
        return fresh if same else pod

    async def _sync(self, pod: JsonMap, *, only_written: bool) -> None:
        volumes = [
            v
            for v in pod.get("spec", {}).get("volumes") or []
            if not only_written or volume_kind(v) in WRITTEN_KINDS
        ]
        if not volumes:
            return
        sources = await self._fetch(pod, volumes)
        allocatable = self._node_allocatable()
        for v in volumes:
            changed = await asyncio.to_thread(
                setup_volume, self.root_dir, pod, v, sources, allocatable
            )
            if changed and only_written:
                log.info("pod=%s volume %s updated", _ref(pod), v["name"])

    async def _fetch(self, pod: JsonMap, volumes: list[JsonMap]) -> Sources:
        """Every configMap, secret and token the volumes read (None: it does not exist)."""
        refs = references(pod, volumes)
        meta = pod["metadata"]
        ns, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
        sources = Sources()
        for kind, names, store in (
            (CONFIGMAPS, refs.configmaps, sources.configmaps),
            (SECRETS, refs.secrets, sources.secrets),
        ):
            for obj_name in sorted(names):
                store[obj_name] = await self._get_or_none(kind, obj_name, ns)
        for spec in sorted(refs.tokens, key=repr):
            try:
                sources.tokens[spec] = await self._tokens.get(ns, name, uid, spec)
            except (ApiError, ValueError) as e:
                raise VolumeSetupError(
                    f'failed to fetch token for service account "{spec.service_account}": {e}'
                ) from e
        return sources

    async def _get_or_none(self, kind: Resource, name: str, ns: str) -> JsonMap | None:
        singular = kind.plural.removesuffix("s")
        try:
            return await self._client.get(kind, name, namespace=ns)
        except NotFound:
            return None
        except ApiError as e:
            raise VolumeSetupError(f'couldn\'t get {singular} {ns}/"{name}": {e}') from e
