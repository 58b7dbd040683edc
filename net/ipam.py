"""IP address management for one node's podCIDR: a JSON store under a data dir, file-locked.
Owns allocation records only; never touches links, routes or iptables."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kube.jsontypes import JsonObject


class IpamError(Exception):
    """Allocation impossible (range exhausted, store unreadable, CIDR too small)."""


@dataclass(frozen=True)
class Allocation:
    ip: str
    container_id: str
    ifname: str
    pod: str = ""


class Store:
    """Allocations of one network (a podCIDR) in `<dir>/allocations.json`, guarded by flock
    on `<dir>/lock` so several processes (agent restarts, tools) never hand out an IP twice.
    The network address, the gateway (first host) and the broadcast address are reserved."""

    def __init__(self, directory: Path, cidr: str) -> None:
        self.directory = directory
        self.network = ipaddress.ip_network(cidr, strict=False)
        hosts = self.network.num_addresses - 2
        if self.network.version != 4 or hosts < 2:
            raise IpamError(f"pod CIDR {cidr} must be IPv4 with room for a gateway and pods")

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def path(self) -> Path:
        return self.directory / "allocations.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[JsonObject]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)

    def _read(self) -> JsonObject:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"cidr": str(self.network), "last": "", "ips": {}}
        except (OSError, ValueError) as e:
            raise IpamError(f"IPAM store {self.path} unreadable: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("ips"), dict):
            raise IpamError(f"IPAM store {self.path} malformed")
        return data

    def _write(self, data: JsonObject) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _next_free(self, data: JsonObject) -> str:
        first = int(self.network.network_address) + 2
        last = int(self.network.broadcast_address) - 1
        taken = data["ips"]
        try:
            start = int(ipaddress.ip_address(data.get("last") or "0.0.0.0")) + 1
        except ValueError:
            start = first
        if not first <= start <= last:
            start = first
        size = last - first + 1
        for step in range(size):
            candidate = str(ipaddress.ip_address(first + (start - first + step) % size))
            if candidate not in taken:
                return candidate
        raise IpamError(f"no free IP left in {self.network} ({len(taken)} allocated)")

    def allocate(self, container_id: str, ifname: str, pod: str = "") -> tuple[Allocation, bool]:
        """The IP for (container_id, ifname): the existing one (False) or a new one (True).
        New IPs go round-robin after the last one given, so a freed IP is not reused at once."""
        with self._locked() as data:
            found = _find(data, container_id, ifname)
            if found is not None:
                return found, False
            ip = self._next_free(data)
            data["ips"][ip] = {"containerID": container_id, "ifname": ifname, "pod": pod}
            data["last"] = ip
            return Allocation(ip, container_id, ifname, pod), True

    def release(self, container_id: str, ifname: str) -> Allocation | None:
        """Free the IP of (container_id, ifname); None when it had none (not an error)."""
        with self._locked() as data:
            found = _find(data, container_id, ifname)
            if found is not None:
                del data["ips"][found.ip]
            return found

    def get(self, container_id: str, ifname: str) -> Allocation | None:
        with self._locked() as data:
            return _find(data, container_id, ifname)

    def all(self) -> list[Allocation]:
        with self._locked() as data:
            return [_alloc(ip, rec) for ip, rec in sorted(data["ips"].items())]


def _alloc(ip: str, rec: JsonObject) -> Allocation:
    return Allocation(
        ip, str(rec.get("containerID", "")), str(rec.get("ifname", "")), str(rec.get("pod", ""))
    )


def _find(data: JsonObject, container_id: str, ifname: str) -> Allocation | None:
    for ip, rec in data["ips"].items():
        if rec.get("containerID") == container_id and rec.get("ifname") == ifname:
            return _alloc(ip, rec)
    return None
