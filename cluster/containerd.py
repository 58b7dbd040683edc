"""Config text for the harness's own containerd: its config.toml and a provisional CNI conflist.
Pure rendering: writes no file, starts nothing, and never points at the system containerd's paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

# Snapshotters that cannot work on these machines (no btrfs/zfs/aufs, no thin pool): disabling them
# keeps start-up free of "failed to load plugin" noise.
UNUSABLE_SNAPSHOTTERS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
)
CRI = "io.containerd.grpc.v1.cri"
RUNC_V2 = "io.containerd.runc.v2"
DEBIAN_CNI_BIN_DIR = Path("/usr/lib/cni")

TomlScalar = str | bool | int
TomlValue = TomlScalar | Sequence[str] | Mapping[str, "TomlValue"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_scalar(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_string(str(v)) for v in value) + "]"
    raise TypeError(f"not a TOML scalar: {value!r}")


def _toml_table(path: list[str], table: Mapping[str, TomlValue], out: list[str]) -> None:
    subtables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    if path and (scalars or not subtables):
        out.append("")
        out.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for key, scalar in scalars:
        out.append(f"{_toml_key(key)} = {_toml_scalar(scalar)}")
    for key, sub in subtables:
        assert isinstance(sub, Mapping)
        _toml_table([*path, key], sub, out)


def render_toml(document: Mapping[str, TomlValue]) -> str:
    """Render nested mappings of str/bool/int/list[str] as TOML (tables after their scalars)."""
    out: list[str] = []
    _toml_table([], document, out)
    return "\n".join(out).lstrip("\n") + "\n"


def config_document(
    *,
    root: Path,
    state: Path,
    socket: Path,
    cni_bin_dir: Path,
    cni_conf_dir: Path,
    sandbox_image: str,
) -> dict[str, TomlValue]:
    """The containerd 1.6 (config version 2) settings as nested dicts, before rendering."""
    cri: dict[str, TomlValue] = {
        "sandbox_image": sandbox_image,
        # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which these machines do not grant: without
        # this every RunPodSandbox fails inside runc (see ENVIRONMENT.md).
        "restrict_oom_score_adj": True,
        # Streaming (exec/attach/port-forward) only on loopback, on a port the kernel picks.
        "stream_server_address": "127.0.0.1",
        "stream_server_port": "0",
        "enable_tls_streaming": False,
        "disable_tcp_service": True,
        # What Kubernetes users get from containerd 2.x: ports <1024 and ping without privileges
        # inside a pod's own network namespace (containerd skips this for host-network pods).
        "enable_unprivileged_ports": True,
        "enable_unprivileged_icmp": True,
        # Pod netns files under our own state dir, not /var/run/netns shared with `ip netns`.
        "netns_mounts_under_state_dir": True,
        "systemd_cgroup": False,
        "tolerate_missing_hugetlb_controller": True,
        "max_container_log_line_size": 16384,
        "containerd": {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "discard_unpacked_layers": False,
            "runtimes": {
                "runc": {
                    "runtime_type": RUNC_V2,
                    "options": {
                        "SystemdCgroup": False,
                        "BinaryName": "runc",
                        # runc's state, which would default to /run/containerd/runc.
                        "Root": str(state / "runc"),
                    },
                },
            },
        },
        "cni": {
            "bin_dir": str(cni_bin_dir),
            "conf_dir": str(cni_conf_dir),
            "max_conf_num": 1,
            "conf_template": "",
        },
        # hosts.toml lookups under our root instead of /etc/containerd/certs.d (no registry anyway).
        "registry": {"config_path": str(root / "certs.d")},
    }
    return {
        "version": 2,
        "root": str(root),
        "state": str(state),
        "temp": "",
        "plugin_dir": "",
        "oom_score": 0,
        "imports": [],
        "required_plugins": [CRI],
        "disabled_plugins": list(UNUSABLE_SNAPSHOTTERS),
        "grpc": {"address": str(socket), "tcp_address": "", "uid": 0, "gid": 0},
        "ttrpc": {"address": str(socket) + ".ttrpc", "uid": 0, "gid": 0},
        "debug": {"address": "", "level": ""},
        "metrics": {"address": ""},
        "cgroup": {"path": ""},
        "plugins": {
            CRI: cri,
            # Would default to /opt/containerd, shared by every containerd on the host.
            "io.containerd.internal.v1.opt": {"path": str(root / "opt")},
            "io.containerd.runtime.v1.linux": {
                "shim": "containerd-shim",
                "runtime": "runc",
                "runtime_root": str(state / "runc-v1"),
                "no_shim": False,
            },
            "io.containerd.snapshotter.v1.overlayfs": {"root_path": ""},
        },
    }


def render_config(
    *,
    root: Path,
    state: Path,
    socket: Path,
    cni_bin_dir: Path,
    cni_conf_dir: Path,
    sandbox_image: str,
) -> str:
    """config.toml for a containerd with its own root, state and socket (CRI enabled, runc v2,
    cgroupfs driver, overlayfs, CNI from the given directories)."""
    header = "# Generated by pykubelet (cluster/containerd.py) for a harness containerd.\n"
    return header + render_toml(
        config_document(
            root=root,
            state=state,
            socket=socket,
            cni_bin_dir=cni_bin_dir,
            cni_conf_dir=cni_conf_dir,
            sandbox_image=sandbox_image,
        )
    )


def provisional_cni_conflist(
    *,
    pod_cidr: str,
    bridge: str = "cni0",
    name: str = "pykubelet-provisional",
    ipam_data_dir: Path | None = None,
) -> str:
    """A bridge + host-local + portmap conflist for Debian's plugins in /usr/lib/cni: a stand-in
    until pykubelet's own CNI plugin exists. `ipam_data_dir` moves host-local's leases out of
    /var/lib/cni/networks (useful when several test nodes share one host)."""
    ipam: dict[str, object] = {
        "type": "host-local",
        "subnet": pod_cidr,
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    if ipam_data_dir is not None:
        ipam["dataDir"] = str(ipam_data_dir)
    conflist = {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": ipam,
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conflist, indent=2) + "\n"
