"""Makes one pod's volumes exist on the node (dirs, tmpfs, written content, ownership) and removes
them. Blocking, run in a worker thread; never talks to the apiserver (content comes planned).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from kube.jsontypes import JsonMap
from kube.quantity import QuantityError, parse_memory
from kubelet.pods.seams import VolumeSetupError
from kubelet.volumes import hostfs
from kubelet.volumes.atomic import PayloadError, write_atomically
from kubelet.volumes.content import FileProjection, Payload, Sources, plan_payload
from kubelet.volumes.memsize import empty_dir_memory_size
from kubelet.volumes.paths import (
    MEMORY_KINDS,
    WRITTEN_KINDS,
    pods_dir,
    volume_dir,
    volume_kind,
)

log = logging.getLogger(__name__)
EMPTY_DIR_MODE = 0o777
MEMORY_EMPTY_DIR_MODE = 0o1777
"""A tmpfs root as upstream leaves it (the kernel's default): sticky, like /tmp."""


def _fail(name: str, text: str) -> VolumeSetupError:
    return VolumeSetupError(f'MountVolume.SetUp failed for volume "{name}" : {text}')


def fs_group_of(pod: JsonMap) -> int | None:
    value = (pod.get("spec", {}).get("securityContext") or {}).get("fsGroup")
    return int(value) if value is not None else None


def with_group_modes(payload: Payload) -> Payload:
    """The payload's modes as they will be after fsGroup ownership (read-only volumes)."""
    return {
        p: FileProjection(f.data, hostfs.fs_group_mode(f.mode, is_dir=False, read_only=True))
        for p, f in payload.items()
    }


def memory_size(pod: JsonMap, volume: JsonMap, allocatable: Mapping[str, str]) -> int | None:
    """The tmpfs size of a memory-backed emptyDir (kubelet.volumes.memsize)."""
    try:
        node_memory = parse_memory(allocatable["memory"]) if "memory" in allocatable else None
    except QuantityError:
        node_memory = None
    try:
        return empty_dir_memory_size(pod, volume, node_memory)
    except QuantityError as e:
        raise _fail(str(volume["name"]), f"invalid sizeLimit: {e}") from e


def setup_volume(
    root_dir: Path,
    pod: JsonMap,
    volume: JsonMap,
    sources: Sources,
    allocatable: Mapping[str, str],
) -> bool:
    """Make one volume ready (idempotent); returns whether written content changed."""
    name = str(volume["name"])
    kind = volume_kind(volume)
    uid = str(pod["metadata"]["uid"])
    target = volume_dir(root_dir, uid, volume)
    gid = fs_group_of(pod)
    try:
        if kind == "hostPath":
            try:
                hostfs.check_host_path(str(target), str(volume["hostPath"].get("type") or ""))
            except hostfs.HostPathError as e:
                raise _fail(name, f"hostPath type check failed: {e}") from e
            return False
        if kind == "emptyDir":
            in_memory = (volume.get("emptyDir") or {}).get("medium") == "Memory"
            size = memory_size(pod, volume, allocatable) if in_memory else None
            _empty_dir(target, volume, gid, size)
            return False
        if kind in WRITTEN_KINDS:
            return _written(target, kind, pod, volume, sources, allocatable, gid)
    except subprocess.CalledProcessError as e:
        raise _fail(name, f"mount failed: {(e.stderr or '').strip() or e}") from e
    except (OSError, PayloadError) as e:
        raise _fail(name, str(e)) from e
    raise _fail(name, f"volume type not supported by this node: {sorted(volume)}")


def _empty_dir(target: Path, volume: JsonMap, gid: int | None, memory_bytes: int | None) -> None:
    """Disk or tmpfs; ownership only when first made (later the pod's files are its own)."""
    if (volume.get("emptyDir") or {}).get("medium") == "Memory":
        made = hostfs.mount_tmpfs(target, memory_bytes, MEMORY_EMPTY_DIR_MODE)
    else:
        made = not target.is_dir()
        target.mkdir(parents=True, exist_ok=True)
        if made:
            target.chmod(EMPTY_DIR_MODE)
    if made and gid is not None:
        hostfs.apply_fs_group(target, gid, read_only=False)


def _written(
    target: Path,
    kind: str,
    pod: JsonMap,
    volume: JsonMap,
    sources: Sources,
    allocatable: Mapping[str, str],
    gid: int | None,
) -> bool:
    payload = plan_payload(pod, volume, sources, allocatable)
    if kind in MEMORY_KINDS:
        hostfs.mount_tmpfs(target, None)
    else:
        target.mkdir(parents=True, exist_ok=True)
    if gid is None:
        return write_atomically(target, payload)
    group = gid
    changed = write_atomically(
        target,
        with_group_modes(payload),
        prepare=lambda d: hostfs.apply_fs_group(d, group, read_only=True),
    )
    hostfs.apply_fs_group(target, gid, read_only=True)
    return changed


def teardown_pod(root_dir: Path, uid: str, *, remove_pod_dir: bool = False) -> list[str]:
    """Unmount everything mounted below the pod's directory (found in mountinfo, so it works
    after a restart), then remove its volumes. Returns the mount points it unmounted."""
    base = (pods_dir(root_dir) / uid).resolve()
    found = hostfs.mounts_under(hostfs.current_mounts(), base)
    for point in found:
        try:
            hostfs.unmount(point)
        except subprocess.CalledProcessError as e:
            log.error("pod uid=%s: cannot unmount %s: %s", uid, point, (e.stderr or "").strip())
    left = hostfs.mounts_under(hostfs.current_mounts(), base)
    if left:
        log.error("pod uid=%s: still mounted, not removing its volumes: %s", uid, left)
        return found
    shutil.rmtree(base if remove_pod_dir else base / "volumes", ignore_errors=True)
    return found
