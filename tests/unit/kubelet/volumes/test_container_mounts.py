"""CRI mounts of a container: read-only kinds, propagation, subPath(Expr) and escapes.
Symlink checks run on a temporary directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from cri import api
from kubelet.pods.decode import pod_from_api
from kubelet.pods.seams import ContainerConfigError
from kubelet.volumes import container_mounts as mounts
from kubelet.volumes.container_mounts import resolve_subpath


def _pod(volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"uid": "u1", "name": "web"}, "spec": {"volumes": volumes}}


def container_mounts(root: Path, pod: dict[str, Any], container: dict[str, Any]) -> list[api.Mount]:
    """The mounts of `container` (given a name and an image) in `pod`, both decoded."""
    spec = {**pod["spec"], "containers": [{"name": "c", "image": "img:1", **container}]}
    typed = pod_from_api({**pod, "spec": spec})
    return mounts.container_mounts(root, typed, typed.containers[0])


def test_mounts_in_order_with_read_only_rules(tmp_path: Path) -> None:
    pod = _pod(
        [
            {"name": "cfg", "configMap": {"name": "c"}},
            {"name": "data", "emptyDir": {}},
            {"name": "h", "hostPath": {"path": str(tmp_path)}},
        ]
    )
    container = {
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "data", "mountPath": "/data", "readOnly": True},
            {"name": "h", "mountPath": "/h", "mountPropagation": "HostToContainer"},
        ]
    }
    got = container_mounts(tmp_path / "root", pod, container)
    vols = tmp_path / "root" / "pods" / "u1" / "volumes"
    assert [(m.container_path, m.host_path, m.readonly) for m in got] == [
        ("/etc/cfg", str(vols / "kubernetes.io~configmap" / "cfg"), True),
        ("/data", str(vols / "kubernetes.io~empty-dir" / "data"), True),
        ("/h", str(tmp_path), False),
    ]
    assert got[2].propagation == api.PROPAGATION_HOST_TO_CONTAINER


def test_unknown_volume_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ContainerConfigError, match='volumeMount "x"'):
        container_mounts(tmp_path, _pod([]), {"volumeMounts": [{"name": "x", "mountPath": "/x"}]})


def test_subpath_expr_creates_the_directory(tmp_path: Path) -> None:
    pod = _pod([{"name": "logs", "hostPath": {"path": str(tmp_path)}}])
    container = {
        "env": [{"name": "POD", "value": "web-1"}],
        "volumeMounts": [{"name": "logs", "mountPath": "/logs", "subPathExpr": "pods/$(POD)"}],
    }
    (m,) = container_mounts(tmp_path, pod, container)
    assert m.host_path == str(tmp_path.resolve() / "pods" / "web-1")
    assert (tmp_path / "pods" / "web-1").is_dir()


def test_subpath_through_symlink_outside_is_refused(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    os.symlink("/etc", vol / "escape")
    os.symlink("../../", vol / "up")
    for sub in ("escape", "escape/passwd", "up/x"):
        with pytest.raises(ContainerConfigError, match=f'subPath "{sub}".*outside of its volume'):
            resolve_subpath(vol, sub, mount_name="v")


def test_subpath_symlink_inside_is_fine(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "real").mkdir(parents=True)
    os.symlink("real", vol / "alias")
    assert resolve_subpath(vol, "alias", mount_name="v") == (vol / "real").resolve()


def test_subpath_lexical_escape_refused(tmp_path: Path) -> None:
    with pytest.raises(ContainerConfigError, match=r'must not contain "\.\."'):
        resolve_subpath(tmp_path, "a/../../b", mount_name="v")


def test_missing_subpath_dirs_take_the_volume_roots_mode(tmp_path: Path) -> None:
    # An fsGroup tmpfs emptyDir's root is drwxrwsrwt: a new subPath keeps setgid and sticky
    # (upstream's SafeMakeDir), whatever the umask.
    vol = tmp_path / "vol"
    vol.mkdir()
    os.chmod(vol, 0o3777)
    old = os.umask(0o022)
    try:
        got = resolve_subpath(vol, "a/b", mount_name="v")
    finally:
        os.umask(old)
    assert got == (vol / "a" / "b").resolve()
    for d in (vol / "a", vol / "a" / "b"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o3777


def test_existing_subpath_dirs_keep_their_mode(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "a").mkdir(parents=True)
    os.chmod(vol, 0o777)
    os.chmod(vol / "a", 0o700)
    resolve_subpath(vol, "a/b", mount_name="v")
    assert stat.S_IMODE((vol / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((vol / "a" / "b").stat().st_mode) == 0o777


def test_subpath_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "file").write_text("x")
    with pytest.raises(ContainerConfigError, match=r'subPath "file/sub".*cannot create'):
        resolve_subpath(vol, "file/sub", mount_name="v")
