"""Unit tests of the harness containerd's rendered config.toml and provisional CNI conflist.
Pure parsing of rendered text: starts no containerd and writes nothing outside tmp_path.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import containerd

CRI = "io.containerd.grpc.v1.cri"
SYSTEM_PREFIXES = (
    "/run/containerd",
    "/var/run/containerd",
    "/var/lib/containerd",
    "/opt/containerd",
    "/etc/containerd",
    "/var/run/netns",
    "/run/netns",
)


def render(base: Path, sandbox_image: str = "registry.k8s.io/pause:3.10") -> dict[str, Any]:
    text = containerd.render_config(
        root=base / "root",
        state=base / "state",
        socket=base / "run" / "containerd.sock",
        cni_bin_dir=Path("/usr/lib/cni"),
        cni_conf_dir=base / "net.d",
        sandbox_image=sandbox_image,
    )
    return tomllib.loads(text)


@pytest.fixture
def cfg(tmp_path: Path) -> dict[str, Any]:
    return render(tmp_path)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def test_top_level(cfg: dict[str, Any], tmp_path: Path) -> None:
    assert cfg["version"] == 2
    assert cfg["root"] == str(tmp_path / "root")
    assert cfg["state"] == str(tmp_path / "state")
    assert cfg["grpc"]["address"] == str(tmp_path / "run" / "containerd.sock")
    assert cfg["ttrpc"]["address"] == str(tmp_path / "run" / "containerd.sock.ttrpc")
    assert cfg["grpc"]["tcp_address"] == ""
    assert cfg["debug"]["address"] == ""
    assert cfg["metrics"]["address"] == ""
    assert cfg["required_plugins"] == [CRI]
    assert cfg["oom_score"] == 0


def test_unusable_snapshotters_disabled(cfg: dict[str, Any]) -> None:
    for name in ("btrfs", "zfs", "aufs", "devmapper"):
        assert f"io.containerd.snapshotter.v1.{name}" in cfg["disabled_plugins"]
    assert "io.containerd.snapshotter.v1.overlayfs" not in cfg["disabled_plugins"]
    assert CRI not in cfg["disabled_plugins"]


def test_cri_plugin(cfg: dict[str, Any], tmp_path: Path) -> None:
    cri = cfg["plugins"][CRI]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10"
    assert cri["stream_server_address"] == "127.0.0.1"
    assert cri["stream_server_port"] == "0"
    assert cri["enable_tls_streaming"] is False
    assert cri["enable_unprivileged_ports"] is True
    assert cri["enable_unprivileged_icmp"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["systemd_cgroup"] is False
    ctd = cri["containerd"]
    assert ctd["snapshotter"] == "overlayfs"
    assert ctd["default_runtime_name"] == "runc"
    runc = ctd["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is False
    assert runc["options"]["Root"] == str(tmp_path / "state" / "runc")
    cni = cri["cni"]
    assert cni["bin_dir"] == "/usr/lib/cni"
    assert cni["conf_dir"] == str(tmp_path / "net.d")
    assert cni["max_conf_num"] == 1
    assert cri["registry"]["config_path"].startswith(str(tmp_path / "root"))


def test_opt_plugin_under_root(cfg: dict[str, Any], tmp_path: Path) -> None:
    assert cfg["plugins"]["io.containerd.internal.v1.opt"]["path"] == str(tmp_path / "root" / "opt")


def test_no_system_paths(cfg: dict[str, Any]) -> None:
    for s in strings(cfg):
        assert not s.startswith(SYSTEM_PREFIXES), s


def test_every_path_is_ours_or_cni_bin(cfg: dict[str, Any], tmp_path: Path) -> None:
    for s in strings(cfg):
        if s.startswith("/"):
            assert s.startswith(str(tmp_path)) or s == "/usr/lib/cni", s


def test_awkward_paths_round_trip(tmp_path: Path) -> None:
    base = tmp_path / 'we"ird \\ dir ü\t'
    cfg = render(base, sandbox_image='x/"y":1')
    assert cfg["root"] == str(base / "root")
    assert cfg["plugins"][CRI]["sandbox_image"] == 'x/"y":1'


def test_render_toml_empty_and_nested() -> None:
    text = containerd.render_toml({"a": 1, "t": {}, "u": {"v": {"w": True}}, "l": ["x"]})
    assert tomllib.loads(text) == {"a": 1, "t": {}, "u": {"v": {"w": True}}, "l": ["x"]}


def test_conflist() -> None:
    doc = json.loads(containerd.provisional_cni_conflist(pod_cidr="10.244.0.0/24"))
    assert doc["cniVersion"] in ("0.4.0", "1.0.0")
    assert doc["name"] == "pykubelet-provisional"
    bridge, portmap = doc["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["bridge"] == "cni0"
    assert bridge["isGateway"] is True
    assert bridge["ipMasq"] is True
    assert bridge["hairpinMode"] is True
    ipam = bridge["ipam"]
    assert ipam["type"] == "host-local"
    assert ipam["subnet"] == "10.244.0.0/24"
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}]
    assert "dataDir" not in ipam
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_conflist_options(tmp_path: Path) -> None:
    doc = json.loads(
        containerd.provisional_cni_conflist(
            pod_cidr="10.1.2.0/24", bridge="br-test", name="n1", ipam_data_dir=tmp_path / "ipam"
        )
    )
    assert doc["name"] == "n1"
    assert doc["plugins"][0]["bridge"] == "br-test"
    assert doc["plugins"][0]["ipam"]["subnet"] == "10.1.2.0/24"
    assert doc["plugins"][0]["ipam"]["dataDir"] == str(tmp_path / "ipam")


def test_debian_plugins_exist_when_installed() -> None:
    if not containerd.DEBIAN_CNI_BIN_DIR.is_dir():
        pytest.skip("containernetworking-plugins not installed")
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        assert (containerd.DEBIAN_CNI_BIN_DIR / plugin).exists()
