"""What cgroup setup the host has, decided once at start-up: v1 (one mount per controller) or v2
(one unified mount), and whether the configured cgroup driver can work here. Parsing is pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

V1, V2 = 1, 2
CGROUPFS, SYSTEMD = "cgroupfs", "systemd"
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")
"""v1 hierarchies pod cgroups are made in (upstream's libcontainer creates them in each)."""


class CgroupSetupError(RuntimeError):
    """The host's cgroups cannot serve the configuration: names what is missing or wrong."""


@dataclass(frozen=True)
class CgroupHost:
    """The cgroup mounts to use. v1: controller -> mount point; v2: the unified mount."""

    version: int
    v1_mounts: dict[str, Path] = field(default_factory=dict)
    v2_mount: Path | None = None
    v1_other: tuple[Path, ...] = ()
    """v1 hosts: other hierarchies the runtime also makes pod cgroups in (name=systemd, the
    hybrid unified mount); only cleaned up, never written."""


def parse_mountinfo(text: str) -> CgroupHost:
    """The host's cgroup layout from /proc/self/mountinfo: v1 when the memory controller has a v1
    mount (hybrid hosts keep their controllers on v1), else v2 when /sys/fs/cgroup is cgroup2."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    other: list[Path] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount, fstype, options = Path(fields[4]), tail[0], tail[2].split(",")
        if fstype == "cgroup":
            for opt in options:
                if opt in V1_CONTROLLERS and opt not in v1:
                    v1[opt] = mount
            if not any(opt in V1_CONTROLLERS for opt in options):
                other.append(mount)
        elif fstype == "cgroup2":
            other.append(mount)
            if v2 is None or str(mount) == "/sys/fs/cgroup":
                v2 = mount
    if "memory" in v1:
        return CgroupHost(version=V1, v1_mounts=v1, v1_other=tuple(dict.fromkeys(other)))
    if v2 is not None:
        return CgroupHost(version=V2, v2_mount=v2)
    raise CgroupSetupError("no cgroup mounts found in /proc/self/mountinfo (v1 memory or cgroup2)")


def detect(mountinfo: Path = Path("/proc/self/mountinfo")) -> CgroupHost:
    return parse_mountinfo(mountinfo.read_text())


def runtime_driver(config_json: str) -> str | None:
    """The cgroup driver containerd's CRI plugin uses, from its Status verbose "config" (the
    default runtime's SystemdCgroup option, or the old top-level systemdCgroup); None when
    the runtime does not say."""
    try:
        cfg = json.loads(config_json)
    except ValueError:
        return None
    if not isinstance(cfg, dict):
        return None
    if cfg.get("systemdCgroup") is True:
        return SYSTEMD
    ctd = _obj(cfg, "containerd")
    runtime = _obj(_obj(ctd, "runtimes"), str(ctd.get("defaultRuntimeName") or "runc"))
    if not runtime:
        return None
    return SYSTEMD if _obj(runtime, "options").get("SystemdCgroup") is True else CGROUPFS


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    value = d.get(key)
    return value if isinstance(value, dict) else {}


def check_runtime_driver(driver: str, runtime: str | None) -> None:
    if runtime is not None and runtime != driver:
        raise CgroupSetupError(
            f'cgroupDriver "{driver}" does not match the container runtime\'s cgroup driver '
            f'"{runtime}": set cgroupDriver: {runtime}, or change the runtime\'s configuration'
        )


def check_driver(driver: str, pid1_comm: str) -> None:
    """Refuse a driver this host cannot serve: systemd needs systemd as PID 1. (containerd 1.6
    does not report its driver through CRI; `pykubelet up` configures it for cgroupfs.)"""
    if driver == SYSTEMD and pid1_comm.strip() != "systemd":
        raise CgroupSetupError(
            f'cgroupDriver "systemd" needs systemd as PID 1, but PID 1 is "{pid1_comm.strip()}": '
            'use cgroupDriver "cgroupfs" (and SystemdCgroup = false in the runtime)'
        )
    if driver not in (CGROUPFS, SYSTEMD):
        raise CgroupSetupError(f'unknown cgroupDriver "{driver}": must be cgroupfs or systemd')
