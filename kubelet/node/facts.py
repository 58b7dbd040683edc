"""Facts about this machine that the Node object reports: identity, kernel, OS, capacity.
Reads /proc, /etc and statvfs only; decides nothing about conditions or what to write.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MachineFacts:
    """What the node is made of, as reported in node.status.nodeInfo and capacity."""

    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str
    os_image: str
    architecture: str
    cpus: int
    memory_bytes: int
    ephemeral_storage_bytes: int
    hugepages: dict[str, int]
    """Page size label (e.g. "2Mi") to bytes of hugepages of that size."""


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def os_image(os_release: str) -> str:
    """PRETTY_NAME from an /etc/os-release text, as upstream reports it."""
    for line in os_release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def mem_total_bytes(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise ValueError("MemTotal missing from /proc/meminfo")


def go_arch(machine: str) -> str:
    """Kubernetes' architecture names (GOARCH) from uname's machine field."""
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
    }.get(machine, machine)


def _hugepages() -> dict[str, int]:
    out: dict[str, int] = {}
    base = Path("/sys/kernel/mm/hugepages")
    if not base.is_dir():
        return out
    for entry in base.iterdir():  # hugepages-2048kB
        kib = int(entry.name.removeprefix("hugepages-").removesuffix("kB"))
        count = int(_read(str(entry / "nr_hugepages"), "0"))
        label = f"{kib // 1024}Mi" if kib < 1024 * 1024 else f"{kib // (1024 * 1024)}Gi"
        out[label] = count * kib * 1024
    return out


def gather(root_dir: Path) -> MachineFacts:
    """Read the machine's facts; `root_dir` is where ephemeral storage lives (the kubelet root)."""
    probe = root_dir if root_dir.exists() else Path("/")
    st = os.statvfs(probe)
    machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    return MachineFacts(
        machine_id=machine_id,
        system_uuid=_read("/sys/class/dmi/id/product_uuid").lower() or machine_id,
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        kernel_version=platform.release(),
        os_image=os_image(_read("/etc/os-release")),
        architecture=go_arch(platform.machine()),
        cpus=os.cpu_count() or 1,
        memory_bytes=mem_total_bytes(_read("/proc/meminfo")),
        ephemeral_storage_bytes=st.f_blocks * st.f_frsize,
        hugepages=_hugepages(),
    )


def hostname() -> str:
    """The node name upstream uses by default: the hostname, lower-cased."""
    return socket.gethostname().lower()
