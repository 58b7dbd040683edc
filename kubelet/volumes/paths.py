"""Pure path planning for pod volumes: the on-disk layout, subPath/subPathExpr expansion and the
lexical checks on them. Touches no file system; symlink checks live in the manager's executor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from kube.jsontypes import JsonMap
from kubelet.pods.model import Container, FieldRef, Pod
from kubelet.pods.seams import ContainerConfigError

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIG_MAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
PROJECTED = "kubernetes.io~projected"
DOWNWARD_API = "kubernetes.io~downward-api"
HOST_PATH = "kubernetes.io~host-path"

PLUGIN_BY_KIND = {
    "emptyDir": EMPTY_DIR,
    "configMap": CONFIG_MAP,
    "secret": SECRET,
    "projected": PROJECTED,
    "downwardAPI": DOWNWARD_API,
    "hostPath": HOST_PATH,
}
KINDS = tuple(PLUGIN_BY_KIND)
WRITTEN_KINDS = frozenset({"configMap", "secret", "projected", "downwardAPI"})
"""Kinds whose content the agent writes (AtomicWriter) and refreshes."""
MEMORY_KINDS = frozenset({"secret", "projected", "downwardAPI"})
"""Kinds that live on a tmpfs, as upstream wraps them in a memory-backed emptyDir."""
READ_ONLY_KINDS = WRITTEN_KINDS
"""Kinds always mounted read-only into containers (upstream since the 2018 subPath CVE fixes)."""

_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def pods_dir(root_dir: Path) -> Path:
    return root_dir / "pods"


def pod_volumes_dir(root_dir: Path, uid: str) -> Path:
    return pods_dir(root_dir) / uid / "volumes"


def volume_kind(volume: JsonMap) -> str:
    """The volume's source kind (emptyDir, hostPath, ...), or "" when it is not one we serve."""
    for kind in KINDS:
        if kind in volume:
            return kind
    return ""


def volume_dir(root_dir: Path, uid: str, volume: JsonMap) -> Path:
    """`<root>/pods/<uid>/volumes/<plugin>/<name>`; hostPath has no directory of its own."""
    kind = volume_kind(volume)
    if kind == "hostPath":
        return Path(str(volume["hostPath"].get("path", "")))
    plugin = PLUGIN_BY_KIND.get(kind, "kubernetes.io~unsupported")
    return pod_volumes_dir(root_dir, uid) / plugin / str(volume["name"])


def expand_subpath_expr(expr: str, env: Mapping[str, str]) -> str:
    """$(VAR) from the container's env; `$$` is a literal `$`; unknown references stay as text."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, expr)


def plain_env(pod: Pod, container: Container) -> dict[str, str]:
    """Env vars a subPathExpr may use: literal values and the pod's own identity fields."""
    fields = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account_name,
    }
    env: dict[str, str] = {}
    for e in container.env:
        if e.value_from is None:
            env[e.name] = expand_subpath_expr(e.value, env)
        elif isinstance(e.source, FieldRef) and e.source.field_path in fields:
            env[e.name] = fields[e.source.field_path]
    return env


def check_subpath(sub_path: str, *, mount_name: str) -> PurePosixPath:
    """The relative subPath, refused when absolute or containing `..` (ContainerConfigError)."""
    p = PurePosixPath(sub_path)
    if p.is_absolute():
        raise ContainerConfigError(
            f'subPath "{sub_path}" of volumeMount "{mount_name}" must be a relative path'
        )
    if ".." in p.parts:
        raise ContainerConfigError(
            f'subPath "{sub_path}" of volumeMount "{mount_name}" must not contain ".."'
        )
    return p


def within(base: Path, target: Path) -> bool:
    """Whether `target` (already resolved) is `base` or below it."""
    return target == base or base in target.parents
