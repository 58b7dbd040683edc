"""--config-dir drop-ins as upstream's mergeKubeletConfigurations: *.conf files only, in lexical
order with subdirectories entered where they sort, each a JSON merge patch over the defaulted
configuration so far (maps merge key by key, null resets to the default, lists replace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelet.config import API_VERSION, KIND, ConfigError, from_dict
from kubelet.config.dropin import files, merge_dir, merge_patch

HEADER = {"apiVersion": API_VERSION, "kind": KIND}


def write(path: Path, body: dict[str, Any], header: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**(HEADER if header else {}), **body}))


def merged(base: dict[str, Any], directory: Path) -> Any:
    notes: list[str] = []
    out = from_dict(merge_dir({**HEADER, **base}, directory, notes.append), note=notes.append)
    assert notes == []
    return out


def test_merge_patch_is_rfc7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "k": "v"}
    patch = {"a": {"b": 9, "c": None, "d": {"e": 1}}, "l": [3], "k": None}
    assert merge_patch(target, patch) == {"a": {"b": 9, "d": {"e": 1}}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2], "k": "v"}  # untouched
    assert merge_patch({"a": 1}, "x") == "x"


def test_files_walk_in_lexical_order_entering_directories_in_place(tmp_path: Path) -> None:
    for name in ("30-c.conf", "10-a.conf", "20-b/01.conf", "20-b/sub/02.conf", "README", "2.conf"):
        write(tmp_path / name, {})
    got = [str(p.relative_to(tmp_path)) for p in files(tmp_path)]
    assert got == ["10-a.conf", "2.conf", "20-b/01.conf", "20-b/sub/02.conf", "30-c.conf", "README"]


def test_later_files_win_and_other_files_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "10-a.conf", {"maxPods": 20, "clusterDNS": ["10.0.0.1", "10.0.0.2"]})
    write(tmp_path / "20-b" / "x.conf", {"maxPods": 30})
    write(tmp_path / "30-c.conf", {"clusterDNS": ["10.0.0.3"]})
    write(tmp_path / "99-z.yaml", {"maxPods": 99})  # not .conf: skipped
    c = merged({"maxPods": 10, "port": 10260}, tmp_path)
    assert (c.max_pods, c.port, c.cluster_dns) == (30, 10260, ("10.0.0.3",))


def test_maps_merge_over_the_defaulted_base_and_null_resets(tmp_path: Path) -> None:
    write(
        tmp_path / "10.conf", {"evictionHard": {"memory.available": "1Gi"}, "syncFrequency": None}
    )
    c = merged({"syncFrequency": "5m"}, tmp_path)
    # the base evictionHard (upstream's defaults) is merged into, not replaced
    assert dict(c.eviction_hard) == {
        "memory.available": "1Gi",
        "nodefs.available": "10%",
        "imagefs.available": "15%",
        "nodefs.inodesFree": "5%",
    }
    assert c.sync_frequency.total_seconds() == 60  # null: back to the default


def test_zero_values_in_drop_ins_are_unset_too(tmp_path: Path) -> None:
    write(tmp_path / "10.conf", {"nodeStatusUpdateFrequency": "0s", "port": 0})
    c = merged({"port": 10260}, tmp_path)
    assert (c.node_status_update_frequency.total_seconds(), c.port) == (10, 10250)


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        ({}, False, 'missing "apiVersion"'),
        ({"apiVersion": "kubelet.config.k8s.io/v1", "kind": KIND}, False, "unsupported value"),
        ({"maxPods": "x"}, True, "KubeletConfiguration.maxPods: expected an integer"),
    ],
)
def test_bad_drop_ins_are_errors(
    tmp_path: Path, body: dict[str, Any], header: bool, message: str
) -> None:
    write(tmp_path / "10.conf", body, header)
    with pytest.raises(ConfigError, match=message):
        merged({}, tmp_path)


def test_relative_paths_in_drop_ins_stay_as_written(tmp_path: Path) -> None:
    write(tmp_path / "10.conf", {"staticPodPath": "manifests"})
    assert merged({}, tmp_path).static_pod_path == "manifests"
