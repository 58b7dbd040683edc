"""The CRI mounts of one container: volume dirs, read-only kinds, propagation, subPath/subPathExpr
checked against escapes (symlinks included). Mounts nothing itself: the runtime bind-mounts them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cri import api
from kubelet.pods.model import Container, Pod, VolumeMount
from kubelet.pods.seams import ContainerConfigError
from kubelet.volumes.paths import (
    READ_ONLY_KINDS,
    check_subpath,
    expand_subpath_expr,
    plain_env,
    volume_dir,
    volume_kind,
    within,
)

PROPAGATION = {
    "": api.PROPAGATION_PRIVATE,
    "None": api.PROPAGATION_PRIVATE,
    "HostToContainer": api.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": api.PROPAGATION_BIDIRECTIONAL,
}


def _make_dirs(base: Path, full: Path) -> None:
    """The missing directories from `base` down to `full`, each with the mode of the volume's
    root, setgid and sticky bits included (umask aside), as upstream's SafeMakeDir: a subPath
    in an fsGroup volume stays group-writable and keeps handing the group on."""
    mode = stat.S_IMODE(base.stat().st_mode)
    path = base
    for part in full.relative_to(base).parts:
        path = path / part
        if not path.exists():
            path.mkdir()
            os.chmod(path, mode)


def resolve_subpath(base: Path, sub_path: str, *, mount_name: str) -> Path:
    """`base/sub_path` with every symlink resolved, refused (ContainerConfigError) when it lands
    outside the volume; a missing directory is created, as upstream does for subPath."""
    rel = check_subpath(sub_path, mount_name=mount_name)
    real_base = base.resolve()
    full = Path(os.path.realpath(real_base / rel))
    if not within(real_base, full):
        raise ContainerConfigError(
            f'subPath "{sub_path}" of volumeMount "{mount_name}" resolves to {full}, '
            f"outside of its volume"
        )
    if not full.exists() and not full.is_symlink():
        try:
            _make_dirs(real_base, full)
        except OSError as e:
            raise ContainerConfigError(
                f'subPath "{sub_path}" of volumeMount "{mount_name}": cannot create {full}: {e}'
            ) from e
        again = full.resolve()
        if not within(real_base, again):
            raise ContainerConfigError(
                f'subPath "{sub_path}" of volumeMount "{mount_name}" escapes its volume'
            )
        full = again
    return full


def _sub_path(pod: Pod, container: Container, vm: VolumeMount) -> str:
    if vm.sub_path_expr:
        return expand_subpath_expr(vm.sub_path_expr, plain_env(pod, container))
    return vm.sub_path


def container_mounts(root_dir: Path, pod: Pod, container: Container) -> list[api.Mount]:
    """One api.Mount per volumeMount, in the spec's order; ContainerConfigError names the mount."""
    uid = pod.uid
    volumes = {str(v["name"]): v for v in pod.volumes}
    out: list[api.Mount] = []
    for vm in container.volume_mounts:
        name = vm.name
        volume = volumes.get(name)
        if volume is None:
            raise ContainerConfigError(f'volumeMount "{name}" refers to no volume of the pod')
        kind = volume_kind(volume)
        if not kind:
            raise ContainerConfigError(f'volume "{name}" has a type this node cannot mount')
        host = volume_dir(root_dir, uid, volume)
        sub = _sub_path(pod, container, vm)
        if sub:
            host = resolve_subpath(host, sub, mount_name=name)
        propagation = vm.mount_propagation
        if propagation not in PROPAGATION:
            raise ContainerConfigError(
                f'volumeMount "{name}": unknown mountPropagation "{propagation}"'
            )
        out.append(
            api.Mount(
                container_path=vm.mount_path,
                host_path=str(host),
                readonly=vm.read_only or kind in READ_ONLY_KINDS,
                propagation=PROPAGATION[propagation],
            )
        )
    return out
