"""Static pods: reads staticPodPath's manifests into defaulted pods (as upstream's file source) and
keeps a mirror pod in the apiserver for each. Must not run pods nor derive their status itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from kube.apiserver import (
    NODES,
    PODS,
    AlreadyExists,
    ApiClient,
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    Preconditions,
)
from kube.jsontypes import JsonObject
from kubelet.pods.decode import default_pull_policy, pod_from_api
from kubelet.pods.model import PodSpecError, PodUID
from kubelet.pods.source import CONFIG_MIRROR, FILE_SOURCE, PodSink, pod_annotations

log = logging.getLogger(__name__)

CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
POLL_SECONDS = 1.0
MIRROR_RESYNC_SECONDS = 10.0
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ManifestError(ValueError):
    """A manifest file that is not one valid Pod; names the file and the reason."""

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = filename
        self.reason = reason
        super().__init__(f"static pod manifest {filename}: {reason}")


def is_static_pod(pod: JsonObject) -> bool:
    return pod_annotations(pod).get(CONFIG_SOURCE) == FILE_SOURCE


def config_hash(pod: JsonObject) -> str:
    return pod_annotations(pod).get(CONFIG_HASH, "")


def full_name(pod: JsonObject) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def seen_now() -> str:
    """RFC 3339 with fractional seconds, UTC (the config.seen annotation's format)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- parsing and defaulting (pure)


def parse_manifest(text: str, filename: str) -> JsonObject:
    """One Pod object from YAML or JSON text (JSON is YAML); ManifestError if it is not one."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ManifestError(filename, f"not YAML or JSON: {e}") from None
    if raw is None:
        raise ManifestError(filename, "empty manifest")
    if not isinstance(raw, dict):
        raise ManifestError(filename, "must be one object (a Pod)")
    pod: JsonObject = json.loads(json.dumps(raw, default=str))
    if pod.get("kind") != "Pod" or pod.get("apiVersion", "v1") != "v1":
        raise ManifestError(filename, f"kind {pod.get('kind')!r} is not a v1 Pod")
    meta = pod.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ManifestError(filename, "metadata.name is required")
    if not isinstance(pod.get("spec"), dict):
        raise ManifestError(filename, "spec is required")
    return pod


def _default_container(c: object) -> None:
    if not isinstance(c, dict):
        return
    if not c.get("imagePullPolicy") and isinstance(c.get("image"), str):
        c["imagePullPolicy"] = default_pull_policy(c["image"]).value
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def default_spec(spec: JsonObject) -> None:
    """The PodSpec defaults the apiserver would apply (it never sees a static pod), in place."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        for c in items if isinstance(items, list) else []:
            _default_container(c)
    tolerations = spec.setdefault("tolerations", [])
    everything = {"operator": "Exists", "effect": "NoExecute"}
    if isinstance(tolerations, list) and everything not in tolerations:
        tolerations.append(everything)


def static_pod_uid(pod: JsonObject, *, node: str, source: str) -> str:
    """md5 of the (defaulted) object, then host and file source, as upstream's file source."""
    h = hashlib.md5(usedforsecurity=False)
    h.update(json.dumps(pod, sort_keys=True, separators=(",", ":")).encode())
    h.update(f"host:{node}".encode())
    h.update(f"file:{source}".encode())
    return h.hexdigest()


def default_static_pod(pod: JsonObject, *, node: str, source: str) -> JsonObject:
    """A copy defaulted as upstream's file source does: UID (unless set), `<name>-<node>`,
    namespace, nodeName, spec defaults, config.source and config.hash annotations."""
    out = copy.deepcopy(pod)
    out.setdefault("apiVersion", "v1")
    default_spec(out["spec"])
    meta = out["metadata"]
    uid = meta.get("uid") or static_pod_uid(out, node=node, source=source)
    meta["uid"] = uid
    meta["name"] = f"{meta['name']}-{node}"
    meta["namespace"] = meta.get("namespace") or "default"
    out["spec"]["nodeName"] = node
    notes = meta.get("annotations")
    meta["annotations"] = {**(notes if isinstance(notes, dict) else {})}
    meta["annotations"][CONFIG_HASH] = uid
    meta["annotations"][CONFIG_SOURCE] = FILE_SOURCE
    for key in ("resourceVersion", "creationTimestamp", "generateName", "ownerReferences"):
        meta.pop(key, None)
    out.pop("status", None)
    return out


def load_manifest(text: str, *, filename: str, node: str) -> JsonObject:
    """Parse, default and check one manifest: a pod the workers can run, or ManifestError."""
    pod = default_static_pod(parse_manifest(text, filename), node=node, source=filename)
    name = pod["metadata"]["name"]
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ManifestError(filename, f"pod name {name!r} is not a valid DNS subdomain")
    try:
        pod_from_api(pod)
    except PodSpecError as e:
        raise ManifestError(filename, f"{e.field}: {e.problem}") from None
    return pod


def with_seen(pod: JsonObject, seen: str) -> JsonObject:
    meta = pod["metadata"]
    return {**pod, "metadata": {**meta, "annotations": {**meta["annotations"], CONFIG_SEEN: seen}}}


# ---------------------------------------------------------------- the manifest path


def manifest_files(path: Path) -> list[Path]:
    """The manifests under `path` (a dir, or one file), sorted; hidden files are ignored."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(
        p
        for p in path.iterdir()
        if not p.name.startswith(".") and p.name.endswith(MANIFEST_SUFFIXES) and p.is_file()
    )


def fingerprint(path: Path) -> tuple[tuple[str, int, int, int], ...]:
    """Cheap change detection: name, mtime, size and inode of every manifest."""
    out = []
    for p in manifest_files(path):
        with contextlib.suppress(OSError):
            st = p.stat()
            out.append((p.name, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def read_manifests(path: Path, node: str) -> tuple[dict[PodUID, JsonObject], dict[str, str]]:
    """Every good manifest's pod by UID, and the bad ones' reasons by file name."""
    pods: dict[PodUID, JsonObject] = {}
    errors: dict[str, str] = {}
    names: dict[str, str] = {}
    if not path.exists():
        errors[str(path)] = "path does not exist, ignoring"
    for p in manifest_files(path):
        try:
            pod = load_manifest(p.read_text(), filename=str(p), node=node)
        except (OSError, UnicodeDecodeError) as e:
            errors[str(p)] = f"cannot read: {e}"
            continue
        except ManifestError as e:
            errors[str(p)] = e.reason
            continue
        fn = full_name(pod)
        if fn in names:
            errors[str(p)] = f"pod {fn} is already defined by {names[fn]}"
            continue
        names[fn] = str(p)
        pods[PodUID(pod["metadata"]["uid"])] = pod
    return pods, errors


@dataclass
class StaticPodSet:
    """What the file source has handed on, and the rule for handing on more (plain data): a
    new pod waits while a pod of the same full name is still active (as upstream serialises
    static pods by name), so a changed manifest's old pod is torn down before the new starts."""

    emitted: dict[PodUID, JsonObject] = field(default_factory=dict)
    leaving: dict[PodUID, str] = field(default_factory=dict)
    """Removed pods (UID -> full name) whose workers may still be running."""

    def step(
        self, desired: Mapping[PodUID, JsonObject], active: Callable[[PodUID], bool]
    ) -> tuple[list[PodUID], list[JsonObject]]:
        """The removals and updates to send now to move towards `desired`."""
        self.leaving = {uid: fn for uid, fn in self.leaving.items() if active(uid)}
        removals = [uid for uid in self.emitted if uid not in desired]
        for uid in removals:
            self.leaving[uid] = full_name(self.emitted.pop(uid))
        busy = {full_name(p) for p in self.emitted.values()} | set(self.leaving.values())
        updates = []
        for uid, pod in desired.items():
            if uid in self.emitted:
                if self.emitted[uid] != pod:
                    self.emitted[uid] = pod
                    updates.append(pod)
                continue
            if full_name(pod) in busy:
                continue
            busy.add(full_name(pod))
            self.emitted[uid] = pod
            updates.append(pod)
        return removals, updates


class FileSource:
    """Re-reads the manifest path when a cheap scan shows a change (every `poll` s) and at least
    every `check_every` s, and feeds the sink the difference."""

    def __init__(
        self,
        path: Path,
        node: str,
        sink: PodSink,
        *,
        check_every: float = 20.0,
        active: Callable[[PodUID], bool] = lambda uid: False,
        on_ready: Callable[[], None] = lambda: None,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._path, self._node, self._sink = path, node, sink
        self._check_every, self._poll = check_every, poll
        self._active, self._on_ready = active, on_ready
        self._set = StaticPodSet()
        self._desired: dict[PodUID, JsonObject] = {}
        self._seen: dict[PodUID, str] = {}
        self._errors: dict[str, str] = {}
        self._fingerprint: object = None
        self._next_read = 0.0
        self._ready = False

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._poll)

    async def tick(self) -> None:
        now = time.monotonic()
        fp = await asyncio.to_thread(fingerprint, self._path)
        if fp != self._fingerprint or now >= self._next_read:
            self._fingerprint, self._next_read = fp, now + self._check_every
            pods, errors = await asyncio.to_thread(read_manifests, self._path, self._node)
            self._report(errors)
            self._seen = {uid: self._seen.get(uid) or seen_now() for uid in pods}
            self._desired = {uid: with_seen(pod, self._seen[uid]) for uid, pod in pods.items()}
        removals, updates = self._set.step(self._desired, self._active)
        for uid in removals:
            log.info("static pod uid=%s removed from %s", uid, self._path)
            self._sink.remove(uid)
        for pod in updates:
            log.info(
                "static pod %s uid=%s from %s", full_name(pod), pod["metadata"]["uid"], self._path
            )
            self._sink.update(pod)
        if not self._ready:
            self._ready = True
            self._on_ready()

    def _report(self, errors: dict[str, str]) -> None:
        """Log each bad manifest once per distinct reason (re-reads happen every 20 s)."""
        for name, reason in errors.items():
            if self._errors.get(name) != reason:
                log.warning("static pod manifest %s skipped: %s", name, reason)
        self._errors = errors


# ---------------------------------------------------------------- mirror pods


class MirrorStatus(Protocol):
    def set_mirror(self, uid: str, mirror_uid: str | None) -> None: ...


def mirror_pod_body(pod: JsonObject, *, node: str, node_uid: str) -> JsonObject:
    """The mirror pod to create for a static pod: what NodeRestriction lets a node create (the
    mirror annotation, bound to itself, owned by its Node as controller)."""
    meta = pod["metadata"]
    keep = {k: v for k, v in meta.items() if k in ("name", "namespace", "labels")}
    notes = {**pod_annotations(pod), CONFIG_MIRROR: config_hash(pod)}
    owner = {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": True}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**keep, "annotations": notes, "ownerReferences": [owner]},
        "spec": {**copy.deepcopy(pod["spec"]), "nodeName": node},
    }


def mirror_of(mirror: JsonObject, pod: JsonObject) -> bool:
    """`mirror` stands for this static pod (same config hash) and is not being deleted."""
    meta = mirror.get("metadata") or {}
    fresh = not meta.get("deletionTimestamp")
    return fresh and pod_annotations(mirror).get(CONFIG_MIRROR) == config_hash(pod)


@dataclass(frozen=True)
class MirrorActions:
    delete: tuple[JsonObject, ...] = ()
    """Mirror pods to delete (stale, being deleted, or orphaned)."""
    create: tuple[JsonObject, ...] = ()
    """Static pods that need a (new) mirror pod."""
    bind: Mapping[PodUID, str | None] = field(default_factory=dict)
    """Static pod UID -> the UID of its current mirror pod, None if it has none."""


def plan_mirrors(
    static: Mapping[str, JsonObject], mirrors: Mapping[str, JsonObject], *, cleanup: bool
) -> MirrorActions:
    """Both maps are keyed by full name (ns/name). Orphans are deleted only with `cleanup`
    (once every source has been read, so a restart does not churn the mirrors)."""
    delete: list[JsonObject] = []
    create: list[JsonObject] = []
    bind: dict[PodUID, str | None] = {}
    for fn, pod in static.items():
        uid = PodUID(pod["metadata"]["uid"])
        mirror = mirrors.get(fn)
        if mirror is not None and mirror_of(mirror, pod):
            bind[uid] = mirror["metadata"]["uid"]
            continue
        bind[uid] = None
        if mirror is not None:
            delete.append(mirror)
        create.append(pod)
    if cleanup:
        delete.extend(m for fn, m in mirrors.items() if fn not in static)
    return MirrorActions(tuple(delete), tuple(create), bind)


class MirrorPods:
    """Sits between the file source and the merged pod stream: records the static pods, keeps one
    mirror pod per static pod in the apiserver (recreated when deleted or stale, deleted when the
    static pod goes) and tells the status manager which mirror UID to write status to."""

    def __init__(
        self,
        client: ApiClient,
        node: str,
        status: MirrorStatus,
        sink: PodSink,
        *,
        static_enabled: bool = True,
        resync: float = MIRROR_RESYNC_SECONDS,
    ) -> None:
        self._client, self._node, self._status, self._sink = client, node, status, sink
        self._resync = resync
        self._static: dict[str, JsonObject] = {}
        self._mirrors: dict[str, JsonObject] = {}
        self._deleted: set[str] = set()
        """Mirror UIDs known to be gone: late watch events about them are ignored."""
        self._node_uid: str | None = None
        self._files_ready = not static_enabled
        self._api_ready = False
        self._wake = asyncio.Event()

    # ---- PodSink: the file source's pods on their way to the workers --------------------------
    def update(self, pod: JsonObject) -> None:
        self._static[full_name(pod)] = pod
        mirror = self._mirrors.get(full_name(pod))
        bound = mirror["metadata"]["uid"] if mirror and mirror_of(mirror, pod) else None
        self._status.set_mirror(pod["metadata"]["uid"], bound)
        self._sink.update(pod)
        self._wake.set()

    def remove(self, uid: PodUID) -> None:
        for fn, pod in list(self._static.items()):
            if pod["metadata"]["uid"] == uid:
                del self._static[fn]
        self._status.set_mirror(uid, None)
        self._sink.remove(uid)
        self._wake.set()

    def known(self) -> set[PodUID]:
        return self._sink.known()

    def files_ready(self) -> None:
        self._files_ready = True
        self._wake.set()

    # ---- MirrorSink: what the node's pod watch shows of the mirror pods -----------------------
    def mirrors_synced(self, pods: list[JsonObject]) -> None:
        self._mirrors = {full_name(p): p for p in pods if p["metadata"]["uid"] not in self._deleted}
        self._api_ready = True
        self._wake.set()

    def mirror_updated(self, pod: JsonObject) -> None:
        if pod["metadata"]["uid"] not in self._deleted:
            self._mirrors[full_name(pod)] = pod
            self._wake.set()

    def mirror_deleted(self, pod: JsonObject) -> None:
        self._forget_mirror(pod)
        self._wake.set()

    def _forget_mirror(self, pod: JsonObject) -> None:
        uid, fn = pod["metadata"]["uid"], full_name(pod)
        if len(self._deleted) > 4096:
            self._deleted.clear()
        self._deleted.add(uid)
        current = self._mirrors.get(fn)
        if current is not None and current["metadata"]["uid"] == uid:
            del self._mirrors[fn]

    # ---- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._resync)
            self._wake.clear()
            try:
                await self.reconcile()
            except ApiError as e:
                log.warning("mirror pods not reconciled: %s; retrying", e)
                await asyncio.sleep(1)
                self._wake.set()

    async def reconcile(self) -> None:
        cleanup = self._files_ready and self._api_ready
        actions = plan_mirrors(self._static, self._mirrors, cleanup=cleanup)
        for mirror in actions.delete:
            await self._delete(mirror)
        for uid, mirror_uid in actions.bind.items():
            self._status.set_mirror(uid, mirror_uid)
        for pod in actions.create:
            if full_name(pod) not in self._mirrors and self._static.get(full_name(pod)) is pod:
                await self._create(pod)

    async def _delete(self, mirror: JsonObject) -> None:
        meta = mirror["metadata"]
        with contextlib.suppress(NotFound, Conflict):
            await self._client.delete(
                PODS,
                meta["name"],
                namespace=meta["namespace"],
                grace_period_seconds=0,
                preconditions=Preconditions(uid=meta["uid"]),
            )
            log.info("mirror pod %s uid=%s deleted", full_name(mirror), meta["uid"])
        self._forget_mirror(mirror)

    async def _create(self, pod: JsonObject) -> None:
        meta, fn = pod["metadata"], full_name(pod)
        if self._node_uid is None:
            self._node_uid = str((await self._client.get(NODES, self._node))["metadata"]["uid"])
        body = mirror_pod_body(pod, node=self._node, node_uid=self._node_uid)
        try:
            created = await self._client.create(PODS, body, namespace=meta["namespace"])
        except AlreadyExists:
            with contextlib.suppress(NotFound):
                found = await self._client.get(PODS, meta["name"], namespace=meta["namespace"])
                self.mirror_updated(found)
            asyncio.get_running_loop().call_later(1.0, self._wake.set)
            return
        except ApiError as e:
            if isinstance(e, Forbidden):
                self._node_uid = None  # the Node may have been re-created with a new UID
            log.warning("mirror pod for static pod %s not created: %s", fn, e)
            return
        log.info("mirror pod %s uid=%s created", fn, created["metadata"]["uid"])
        self._mirrors[fn] = created
        self._status.set_mirror(meta["uid"], created["metadata"]["uid"])
