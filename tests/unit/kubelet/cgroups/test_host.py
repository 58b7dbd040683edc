"""Detecting the host's cgroup layout from mountinfo, and the driver check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubelet.cgroups.host import (
    V1,
    V2,
    CgroupSetupError,
    check_driver,
    check_runtime_driver,
    parse_mountinfo,
    runtime_driver,
)

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = """\
25 23 0:22 / /proc rw - proc proc rw
30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
"""
COMBINED = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" + (
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
)


def test_v1_hybrid_host() -> None:
    host = parse_mountinfo(HYBRID)
    assert host.version == V1
    assert host.v1_mounts["cpu"] == Path("/sys/fs/cgroup/cpu")
    assert host.v1_mounts["memory"] == Path("/sys/fs/cgroup/memory")
    assert host.v1_other == (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


def test_v1_combined_cpu_cpuacct_mount() -> None:
    host = parse_mountinfo(COMBINED)
    assert host.v1_mounts["cpu"] == host.v1_mounts["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")


def test_v2_host() -> None:
    host = parse_mountinfo(UNIFIED)
    assert host.version == V2 and host.v2_mount == Path("/sys/fs/cgroup")


def test_no_cgroups() -> None:
    with pytest.raises(CgroupSetupError, match="no cgroup mounts"):
        parse_mountinfo("25 23 0:22 / /proc rw - proc proc rw\nnonsense\n")


def test_systemd_driver_needs_systemd_as_pid_1() -> None:
    with pytest.raises(CgroupSetupError, match='PID 1 is "tini"'):
        check_driver("systemd", "tini\n")
    check_driver("systemd", "systemd\n")
    check_driver("cgroupfs", "tini")
    with pytest.raises(CgroupSetupError, match="unknown cgroupDriver"):
        check_driver("cgroupfsx", "tini")


def test_runtime_driver_from_containerd_status_config() -> None:
    def cfg(options: dict[str, object], **top: object) -> str:
        return json.dumps(
            {
                "containerd": {
                    "defaultRuntimeName": "runc",
                    "runtimes": {
                        "runc": {"runtimeType": "io.containerd.runc.v2", "options": options}
                    },
                },
                **top,
            }
        )

    assert runtime_driver(cfg({"SystemdCgroup": False})) == "cgroupfs"
    assert runtime_driver(cfg({})) == "cgroupfs"
    assert runtime_driver(cfg({"SystemdCgroup": True})) == "systemd"
    assert runtime_driver(cfg({}, systemdCgroup=True)) == "systemd"
    assert runtime_driver("") is None
    assert runtime_driver('{"containerd": {"runtimes": {}}}') is None
    check_runtime_driver("cgroupfs", None)
    check_runtime_driver("cgroupfs", "cgroupfs")
    with pytest.raises(CgroupSetupError, match='runtime\'s cgroup driver "systemd"'):
        check_runtime_driver("cgroupfs", "systemd")
