"""The runtime state cache (PLEG): what runs, per pod UID, as seen through CRI, refreshed by a
periodic relist and right after the agent acts on a pod. Converts CRI objects into pods.model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError, NotFound
from kubelet.pods.model import (
    ContainerID,
    ContainerState,
    PodUID,
    RuntimeContainer,
    RuntimePod,
    RuntimeSandbox,
    SandboxID,
    SandboxState,
)
from kubelet.runtime import labels, termination
from kubelet.runtime.metrics import PLEG_RELIST_DURATION

log = logging.getLogger(__name__)
NS = 1e9

_CSTATE = {
    api.CONTAINER_CREATED: ContainerState.CREATED,
    api.CONTAINER_RUNNING: ContainerState.RUNNING,
    api.CONTAINER_EXITED: ContainerState.EXITED,
}


def _secs(ns: int) -> float | None:
    return ns / NS if ns > 0 else None


def sandbox_from_cri(s: api.PodSandbox, ip: str | None = None) -> RuntimeSandbox:
    return RuntimeSandbox(
        id=SandboxID(s.id),
        state=SandboxState.READY if s.state == api.SANDBOX_READY else SandboxState.NOTREADY,
        created_at=s.created_at / NS,
        attempt=s.metadata.attempt,
        ip=ip,
    )


def termination_message(c: api.ContainerStatus, ref: labels.ContainerRef) -> str:
    """The exited container's message by upstream's rules (kubelet.runtime.termination)."""
    host_file = next(
        (
            m.host_path
            for m in c.mounts
            if m.container_path == ref.termination_message_path and m.host_path
        ),
        None,
    )
    return termination.message(
        cri_message=c.message,
        exit_code=c.exit_code,
        reason=c.reason,
        policy=ref.termination_message_policy,
        file_path=host_file,
        log_path=c.log_path,
    )


def container_from_cri(c: api.ContainerStatus, sandbox_id: str) -> RuntimeContainer | None:
    """A container's full status as the planner sees it; None if pykubelet did not make it."""
    ref = labels.read_container_ref(dict(c.labels), dict(c.annotations))
    if ref is None:
        return None
    exited = c.state == api.CONTAINER_EXITED
    return RuntimeContainer(
        id=ContainerID(c.id),
        name=ref.name,
        state=_CSTATE.get(c.state, ContainerState.UNKNOWN),
        exit_code=c.exit_code,
        reason=c.reason,
        message=termination_message(c, ref) if exited else c.message,
        started_at=_secs(c.started_at),
        finished_at=_secs(c.finished_at),
        restart_count=ref.restart_count,
        image=c.image.image,
        image_ref=c.image_ref,
        hash=ref.hash,
        created_at=c.created_at / NS,
        sandbox_id=SandboxID(sandbox_id),
    )


def group_by_pod(
    sandboxes: Iterable[api.PodSandbox], containers: Iterable[api.Container]
) -> dict[PodUID, tuple[list[api.PodSandbox], list[api.Container]]]:
    """CRI objects grouped by the pod UID label pykubelet puts on everything it creates."""
    out: dict[PodUID, tuple[list[api.PodSandbox], list[api.Container]]] = defaultdict(
        lambda: ([], [])
    )
    for s in sandboxes:
        uid = s.labels.get(labels.POD_UID)
        if uid:
            out[PodUID(uid)][0].append(s)
    for c in containers:
        uid = c.labels.get(labels.POD_UID)
        if uid:
            out[PodUID(uid)][1].append(c)
    return dict(out)


class RuntimeCache:
    """Per-pod runtime state with the time it was read; wakes the pod's worker on change."""

    def __init__(
        self,
        runtime: RuntimeClient,
        *,
        on_change: Callable[[PodUID], None],
        relist_every: float = 1.0,
    ) -> None:
        self._rt = runtime
        self._on_change = on_change
        self._pods: dict[PodUID, RuntimePod] = {}
        self._container_cache: dict[str, RuntimeContainer] = {}
        self.relist_every = relist_every
        self.last_relist: float = 0.0
        self.sandbox_meta: dict[str, api.PodSandbox] = {}

    def get(self, uid: PodUID) -> RuntimePod:
        return self._pods.get(uid) or RuntimePod(uid=uid)

    def uids(self) -> set[PodUID]:
        return set(self._pods)

    async def _read_pod(
        self, uid: PodUID, sandboxes: list[api.PodSandbox], containers: list[api.Container]
    ) -> RuntimePod:
        rsbs = []
        for s in sandboxes:
            self.sandbox_meta[s.id] = s
            ip: str | None = None
            if s.state == api.SANDBOX_READY:
                try:
                    sst = (await self._rt.pod_sandbox_status(s.id)).status
                    ip = sst.network.ip
                except NotFound:
                    continue
            rsbs.append(sandbox_from_cri(s, ip))
        rcs = []
        for c in containers:
            cached = self._container_cache.get(c.id)
            # An exited container never changes again: reuse its status.
            if cached is not None and cached.state == ContainerState.EXITED:
                rcs.append(cached)
                continue
            try:
                st = (await self._rt.container_status(c.id)).status
            except NotFound:
                continue
            rc = container_from_cri(st, c.pod_sandbox_id)
            if rc is not None:
                self._container_cache[c.id] = rc
                rcs.append(rc)
        return RuntimePod(uid=uid, sandboxes=tuple(rsbs), containers=tuple(rcs))

    async def refresh(self, uid: PodUID) -> RuntimePod:
        """Re-read one pod right now (after the agent acted on it)."""
        f_sb = api.PodSandboxFilter(label_selector={labels.POD_UID: uid})
        f_c = api.ContainerFilter(label_selector={labels.POD_UID: uid})
        sandboxes = await self._rt.list_pod_sandbox(filter=f_sb)
        containers = await self._rt.list_containers(filter=f_c)
        pod = await self._read_pod(uid, sandboxes, containers)
        self._store(uid, pod, notify=False)
        return pod

    def _store(self, uid: PodUID, pod: RuntimePod, *, notify: bool) -> None:
        old = self._pods.get(uid)
        if not pod.sandboxes and not pod.containers:
            self._pods.pop(uid, None)
        else:
            self._pods[uid] = pod
        if notify and old != pod and (old is not None or pod.sandboxes or pod.containers):
            self._on_change(uid)

    async def relist(self) -> None:
        """List everything; store each pod's state and wake workers of pods that changed."""
        start = time.monotonic()
        try:
            await self._relist()
        finally:
            # Upstream observes every relist, failed ones included.
            PLEG_RELIST_DURATION.observe(time.monotonic() - start)

    async def _relist(self) -> None:
        sandboxes = await self._rt.list_pod_sandbox()
        containers = await self._rt.list_containers()
        live = {c.id for c in containers}
        self._container_cache = {k: v for k, v in self._container_cache.items() if k in live}
        grouped = group_by_pod(sandboxes, containers)
        for uid in set(self._pods) - set(grouped):
            self._store(uid, RuntimePod(uid=uid), notify=True)
        for uid, (sbs, cs) in grouped.items():
            self._store(uid, await self._read_pod(uid, sbs, cs), notify=True)
        self.last_relist = time.monotonic()

    async def relist_loop(self) -> None:
        while True:
            try:
                await self.relist()
            except CRIError as e:
                log.warning("runtime relist failed: %s", e)
            await asyncio.sleep(self.relist_every)

    def healthy(self, threshold: float = 180.0) -> tuple[bool, str]:
        """PLEG health as upstream words it: the relist ran within the threshold."""
        if self.last_relist == 0.0:
            return True, ""
        age = time.monotonic() - self.last_relist
        if age > threshold:
            return False, (
                f"pleg was last seen active {age:.0f}s ago; threshold is {threshold:.0f}s"
            )
        return True, ""
