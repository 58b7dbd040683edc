"""An L2 segment of netns "hosts": a switch netns with a bridge, one netns per host with eth0 on
it, optionally the root netns joined too. Used by `up --nodes` and by the tests' test hosts."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cluster import hostops

BRIDGE = "br0"
UPLINK = "eth0"


class SegmentError(RuntimeError):
    """An `ip` command failed while building the segment; the message names it."""


@dataclass(frozen=True)
class Member:
    """One host on the segment: its netns name and its address with prefix (a.b.c.d/len)."""

    netns: str
    cidr: str

    @property
    def address(self) -> str:
        return self.cidr.split("/")[0]


def ip(*args: str) -> str:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SegmentError(f"ip {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def build(
    switch: str,
    members: Sequence[Member],
    *,
    root: tuple[str, str] | None = None,
    forwarding: bool = False,
    default_route: bool = False,
) -> None:
    """Make the switch netns and each member (idempotent: existing netns are kept as they
    are). `root` = (link name, address/len) joins the root netns through a veth of that name.
    With `forwarding`, members get net.ipv4.ip_forward=1 (nodes that route pod traffic).
    With `default_route`, members get an on-link default route on their uplink, as a real
    node has a default route: a packet to an address no rule handles (a Service IP without
    endpoints) then reaches the FORWARD chain's REJECT instead of failing with no route.
    On-link, with no gateway, so nothing leaves the segment."""
    have = set(hostops.netns_names())
    if switch not in have:
        ip("netns", "add", switch)
        try:
            ip("-n", switch, "link", "add", BRIDGE, "type", "bridge")
            ip("-n", switch, "link", "set", BRIDGE, "up")
        except SegmentError:
            hostops.delete_netns(switch)
            raise
    if root is not None and not Path(f"/sys/class/net/{root[0]}").exists():
        link, cidr = root
        ip("link", "add", link, "type", "veth", "peer", "name", "root", "netns", switch)
        ip("-n", switch, "link", "set", "root", "master", BRIDGE, "up")
        ip("addr", "add", cidr, "dev", link)
        ip("link", "set", link, "up")
    for i, m in enumerate(members, start=1):
        if m.netns in have:
            continue
        ip("netns", "add", m.netns)
        port = f"p{i}"
        try:
            _join(switch, port, m, forwarding=forwarding, default_route=default_route)
        except SegmentError:
            # a half-made member would be kept as it is by the next (idempotent) build. The
            # veth goes first: a deleted netns frees its links later, asynchronously.
            subprocess.run(["ip", "-n", switch, "link", "del", port], capture_output=True)
            hostops.delete_netns(m.netns)
            raise


def _join(switch: str, port: str, m: Member, *, forwarding: bool, default_route: bool) -> None:
    """Wire the new netns of `m` to the switch (port `port`) and configure its uplink."""
    ip(
        "-n",
        switch,
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        UPLINK,
        "netns",
        m.netns,
    )
    ip("-n", switch, "link", "set", port, "master", BRIDGE, "up")
    ip("-n", m.netns, "addr", "add", m.cidr, "dev", UPLINK)
    ip("-n", m.netns, "link", "set", UPLINK, "up")
    ip("-n", m.netns, "link", "set", "lo", "up")
    if default_route:
        ip("-n", m.netns, "route", "add", "default", "dev", UPLINK)
    if forwarding:
        r = subprocess.run(
            [
                "nsenter",
                f"--net=/run/netns/{m.netns}",
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise SegmentError(f"{m.netns}: net.ipv4.ip_forward=1: {r.stderr.strip()}")


def remove(switch: str, netns: Sequence[str], root_link: str | None = None) -> list[str]:
    """Delete the members' netns, the root veth and the switch; returns what went."""
    gone: list[str] = []
    names = set(hostops.netns_names())
    for name in netns:
        if name in names and hostops.delete_netns(name):
            gone.append(f"netns {name}")
    if root_link and hostops.delete_link(root_link):
        gone.append(f"link {root_link}")
    if switch in names and hostops.delete_netns(switch):
        gone.append(f"netns {switch}")
    hostops.release_netns_dir()
    return gone
