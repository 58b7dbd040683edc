"""Netlink work for pod networking with pyroute2: the node bridge, pod veths, pod-side config.
Runs only on a worker thread (it enters pod netns with setns); no IPAM, no iptables here."""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from net import netns

DEFAULT_MTU = 1500


@dataclass(frozen=True)
class PodLink:
    """What ADD built for one sandbox interface (enough for the CNI result and for CHECK)."""

    bridge: str
    bridge_mac: str
    host_veth: str
    host_mac: str
    ifname: str
    pod_mac: str
    ip: str
    prefixlen: int
    gateway: str
    mtu: int


def _attr(msg: Any, name: str, default: Any = None) -> Any:
    return msg.get_attr(name) if msg is not None else default


def _lookup(ipr: IPRoute, ifname: str) -> Any:
    idx = ipr.link_lookup(ifname=ifname)
    return ipr.get_links(idx[0])[0] if idx else None


def uplink_mtu() -> int:
    """MTU of the interface that holds the host's default route (the node's uplink)."""
    with IPRoute() as ipr:
        for route in ipr.get_default_routes(family=2):
            oif = route.get_attr("RTA_OIF")
            if oif:
                return int(ipr.get_links(oif)[0].get_attr("IFLA_MTU") or DEFAULT_MTU)
    return DEFAULT_MTU


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int) -> str:
    """The node bridge, up, with the gateway address; created when missing. Returns its MAC."""
    with IPRoute() as ipr:
        link = _lookup(ipr, name)
        if link is None:
            with contextlib.suppress(NetlinkError):  # a concurrent creator is fine
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            link = _lookup(ipr, name)
        if link is None or _kind(link) != "bridge":
            raise RuntimeError(f"{name} exists and is not a bridge")
        idx = link["index"]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
        if (gateway, prefixlen) not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        return str(link.get_attr("IFLA_ADDRESS"))


def _kind(link: Any) -> str:
    info = link.get_attr("IFLA_LINKINFO")
    return str(info.get_attr("IFLA_INFO_KIND")) if info is not None else ""


def create_veth(host_veth: str, ifname: str, netns_path: str, mtu: int) -> None:
    """A veth pair: `host_veth` here, `ifname` created directly inside the sandbox netns."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ipr:
            ipr.link(
                "add",
                ifname=host_veth,
                kind="veth",
                mtu=mtu,
                peer={"ifname": ifname, "net_ns_fd": fd, "mtu": mtu},
            )
    finally:
        os.close(fd)


def attach_host_end(host_veth: str, bridge: str, alias: str) -> str:
    """Enslave the host end to the bridge, set its alias, bring it up. Returns its MAC."""
    with IPRoute() as ipr:
        link, br = _lookup(ipr, host_veth), _lookup(ipr, bridge)
        if link is None or br is None:
            raise RuntimeError(f"{host_veth} or bridge {bridge} vanished")
        if alias:
            ipr.link("set", index=link["index"], ifalias=alias)
        ipr.link("set", index=link["index"], master=br["index"], state="up")
        return str(link.get_attr("IFLA_ADDRESS"))


def configure_pod_side(netns_path: str, ifname: str, ip: str, prefixlen: int, gateway: str) -> str:
    """Inside the sandbox: lo up, `ifname` up with the IP and a default route via the
    gateway (idempotent). Returns the interface's MAC."""
    with netns.entered(netns_path), IPRoute() as ipr:
        lo = _lookup(ipr, "lo")
        if lo is not None:
            ipr.link("set", index=lo["index"], state="up")
        link = _lookup(ipr, ifname)
        if link is None:
            raise RuntimeError(f"{ifname} missing in {netns_path}")
        idx = link["index"]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
        if (ip, prefixlen) not in have:
            ipr.addr("add", index=idx, address=ip, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        try:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=idx)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        return str(link.get_attr("IFLA_ADDRESS"))


def delete_link(name: str) -> bool:
    """Delete a host link (a veth's peer goes with it); False when it was not there."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        try:
            ipr.link("del", index=idx[0])
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise
            return False
        return True


def host_link(name: str) -> dict[str, Any] | None:
    """A host link's kind, MAC, master index, alias and peer netns id; None when missing."""
    with IPRoute() as ipr:
        link = _lookup(ipr, name)
        if link is None:
            return None
        br = link.get_attr("IFLA_MASTER")
        return {
            "kind": _kind(link),
            "mac": link.get_attr("IFLA_ADDRESS"),
            "master": ipr.get_links(br)[0].get_attr("IFLA_IFNAME") if br else "",
            "alias": link.get_attr("IFLA_IFALIAS") or "",
            "index": link["index"],
        }


def pod_addresses(netns_path: str, ifname: str) -> list[tuple[str, int]] | None:
    """The IPv4 addresses of `ifname` in the sandbox; None when the interface is missing."""
    with netns.entered(netns_path), IPRoute() as ipr:
        link = _lookup(ipr, ifname)
        if link is None:
            return None
        return [
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in ipr.get_addr(index=link["index"], family=2)
        ]
