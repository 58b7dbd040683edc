"""Facts about this machine that the Node object reports: identity, kernel, OS, capacity.
Reads /proc, /etc and statvfs only; decides nothing about conditions or what to write.
"""

from __future__ import annotations

import contextlib
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


@dataclass(frozen=True)
class HostAddress:
    """One address of this host, with what the node-IP rule needs to know about it."""

    ifname: str
    address: str
    global_scope: bool
    default_route: bool
    """The interface carries a default route."""


VIRTUAL_PREFIXES = ("lo", "pyk", "pk", "cni", "docker", "veth", "flannel", "kube-", "virbr")
"""Interfaces that never hold the node IP: loopback, pykubelet's bridges, veths and tunnels
(pyk*, pk*), other pod networks, docker and libvirt bridges."""


def choose_node_ip(hostname_ips: list[str], addresses: list[HostAddress]) -> str:
    """The documented rule for the node IP when --node-ip is not given (first match wins):

    1. an address the hostname resolves to that is assigned to one of this host's interfaces
       (not loopback);
    2. a global IPv4 address on an interface that does not carry the default route (on a
       Vagrant or multi-homed host the default route is the NAT/uplink, identical on every VM;
       the private network is the node network), lowest in interface order;
    3. a global IPv4 address on the default-route interface;
    4. 127.0.0.1.
    Pod bridges, veths, tunnels and docker interfaces are never candidates."""
    usable = [
        a
        for a in addresses
        if a.global_scope and ":" not in a.address and not a.ifname.startswith(VIRTUAL_PREFIXES)
    ]
    local = {a.address for a in usable}
    for ip in hostname_ips:
        if ip in local and not ip.startswith("127."):
            return ip
    for a in usable:
        if not a.default_route:
            return a.address
    return usable[0].address if usable else "127.0.0.1"


def host_addresses() -> list[HostAddress]:
    """This host's IPv4 addresses in interface order (from `ip -j`; [] when it fails)."""
    import json
    import subprocess

    def ip_json(*args: str) -> list[dict[str, object]]:
        r = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
        try:
            out = json.loads(r.stdout or "[]")
        except ValueError:
            return []
        return out if isinstance(out, list) else []

    default_devs = {str(r.get("dev")) for r in ip_json("-4", "route", "show", "default")}
    out: list[HostAddress] = []
    for link in ip_json("-4", "addr", "show"):
        name = str(link.get("ifname", ""))
        infos = link.get("addr_info")
        for a in infos if isinstance(infos, list) else []:
            out.append(
                HostAddress(
                    name, str(a.get("local", "")), a.get("scope") == "global", name in default_devs
                )
            )
    return out


def detect_node_ip() -> str:
    """choose_node_ip over this machine's hostname resolution and addresses."""
    ips: list[str] = []
    with contextlib.suppress(OSError):
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        ips = [str(i[4][0]) for i in infos]
    return choose_node_ip(ips, host_addresses())
