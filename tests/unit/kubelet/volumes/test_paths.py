"""Volume path planning: the upstream on-disk layout, subPathExpr expansion, subPath checks.
Pure: no file system.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.pods.decode import pod_from_api
from kubelet.pods.seams import ContainerConfigError
from kubelet.volumes.paths import (
    check_subpath,
    expand_subpath_expr,
    plain_env,
    volume_dir,
    volume_kind,
    within,
)

ROOT = Path("/var/lib/pyk")


@pytest.mark.parametrize(
    ("volume", "plugin"),
    [
        ({"name": "a", "emptyDir": {}}, "kubernetes.io~empty-dir"),
        ({"name": "a", "configMap": {"name": "x"}}, "kubernetes.io~configmap"),
        ({"name": "a", "secret": {"secretName": "x"}}, "kubernetes.io~secret"),
        ({"name": "a", "projected": {"sources": []}}, "kubernetes.io~projected"),
        ({"name": "a", "downwardAPI": {"items": []}}, "kubernetes.io~downward-api"),
    ],
)
def test_volume_dir_follows_upstream_layout(volume: dict[str, object], plugin: str) -> None:
    assert volume_dir(ROOT, "u1", volume) == ROOT / "pods" / "u1" / "volumes" / plugin / "a"


def test_host_path_is_its_own_path() -> None:
    assert volume_dir(ROOT, "u1", {"name": "h", "hostPath": {"path": "/srv"}}) == Path("/srv")


def test_unknown_kind_is_empty() -> None:
    assert volume_kind({"name": "p", "persistentVolumeClaim": {"claimName": "c"}}) == ""


def test_subpath_expr_expansion() -> None:
    env = {"POD": "web-1", "NS": "prod"}
    assert expand_subpath_expr("$(NS)/$(POD)", env) == "prod/web-1"
    assert expand_subpath_expr("cost$$/$(MISSING)", env) == "cost$/$(MISSING)"


def test_plain_env_takes_values_and_identity_fields() -> None:
    pod = {"metadata": {"name": "web-1", "namespace": "prod", "uid": "u"}, "spec": {}}
    container = {
        "env": [
            {"name": "A", "value": "x"},
            {"name": "B", "value": "$(A)-y"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
    }
    spec = {"containers": [{"name": "c", "image": "img:1", **container}]}
    typed = pod_from_api({**pod, "spec": spec})
    assert plain_env(typed, typed.containers[0]) == {"A": "x", "B": "x-y", "POD": "web-1"}


@pytest.mark.parametrize("bad", ["/etc", "a/../../etc", ".."])
def test_subpath_refused(bad: str) -> None:
    with pytest.raises(ContainerConfigError, match=f'subPath "{bad}" of volumeMount "v"'):
        check_subpath(bad, mount_name="v")


def test_subpath_allowed() -> None:
    assert str(check_subpath("a/b..c/d", mount_name="v")) == "a/b..c/d"


def test_within() -> None:
    assert within(Path("/a/b"), Path("/a/b"))
    assert within(Path("/a/b"), Path("/a/b/c"))
    assert not within(Path("/a/b"), Path("/a/bc"))
