"""Applies a RoutePlan to the kernel of the current netns with pyroute2 (blocking).
Touches only what it owns: routes with protocol RTPROT_PYKUBELET and the plan's VXLAN device."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from net.routes.plan import LocalVtep, Route, RoutePlan, VxlanPeer

log = logging.getLogger(__name__)

RTPROT_PYKUBELET = 0x70
"""The rtm_protocol of every route pykubelet makes (112, unused in iproute2's rt_protos);
`ip route show proto 112` lists them, and sync removes only routes carrying it."""
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 0x04
VXLAN_OVERHEAD = 50
MAIN_TABLE = 254

RouteKey = tuple[str, str, int]


def _lookup(ipr: IPRoute, ifname: str) -> Any:
    idx = ipr.link_lookup(ifname=ifname)
    return ipr.get_links(idx[0])[0] if idx else None


def _linkinfo(link: Any) -> tuple[str, Any]:
    info = link.get_attr("IFLA_LINKINFO")
    if info is None:
        return "", None
    return str(info.get_attr("IFLA_INFO_KIND")), info.get_attr("IFLA_INFO_DATA")


def owned_routes(ipr: IPRoute) -> dict[RouteKey, Any]:
    """Our routes in the main table, keyed by (dst/len, gateway, oif)."""
    out: dict[RouteKey, Any] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in ipr.get_routes(family=family, table=MAIN_TABLE, proto=RTPROT_PYKUBELET):
            if r["proto"] != RTPROT_PYKUBELET:
                continue
            dst = f"{r.get_attr('RTA_DST')}/{r['dst_len']}"
            out[(dst, str(r.get_attr("RTA_GATEWAY") or ""), int(r.get_attr("RTA_OIF") or 0))] = r
    return out


def foreign_routes(ipr: IPRoute) -> dict[str, int]:
    """dst/len -> protocol of main-table routes that are not ours (never replaced)."""
    out: dict[str, int] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in ipr.get_routes(family=family, table=MAIN_TABLE):
            dst = r.get_attr("RTA_DST")
            if dst and r["proto"] != RTPROT_PYKUBELET:
                out[f"{dst}/{r['dst_len']}"] = int(r["proto"])
    return out


def _uplink_mtu(ipr: IPRoute, local_ip: str) -> int:
    for a in ipr.get_addr(family=socket.AF_INET):
        if a.get_attr("IFA_ADDRESS") == local_ip:
            return int(ipr.get_links(a["index"])[0].get_attr("IFLA_MTU") or 1500)
    return 1500


def ensure_vtep(ipr: IPRoute, vtep: LocalVtep) -> int:
    """The VXLAN device as planned (recreated when its VNI, port or local IP differ), up,
    with its MAC and /32 tunnel address. Returns its ifindex."""
    link = _lookup(ipr, vtep.device)
    if link is not None:
        kind, data = _linkinfo(link)
        same = (
            kind == "vxlan"
            and data is not None
            and data.get_attr("IFLA_VXLAN_ID") == vtep.vni
            and data.get_attr("IFLA_VXLAN_PORT") == vtep.port
            and data.get_attr("IFLA_VXLAN_LOCAL") == vtep.local_ip
        )
        if not same:
            if kind != "vxlan":
                raise RuntimeError(f"{vtep.device} exists and is not a vxlan device ({kind!r})")
            log.info("recreating %s: vni/port/local changed", vtep.device)
            ipr.link("del", index=link["index"])
            link = None
    if link is None:
        ipr.link(
            "add",
            ifname=vtep.device,
            kind="vxlan",
            vxlan_id=vtep.vni,
            vxlan_port=vtep.port,
            vxlan_local=vtep.local_ip,
            vxlan_learning=0,
            address=vtep.mac,
            mtu=_uplink_mtu(ipr, vtep.local_ip) - VXLAN_OVERHEAD,
        )
        link = _lookup(ipr, vtep.device)
        if link is None:
            raise RuntimeError(f"{vtep.device} vanished right after creation")
    idx = int(link["index"])
    if str(link.get_attr("IFLA_ADDRESS")) != vtep.mac:
        ipr.link("set", index=idx, address=vtep.mac)
    have = {
        (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
        for a in ipr.get_addr(index=idx, family=socket.AF_INET)
    }
    for address, prefixlen in have - {(vtep.address, 32)}:
        # an earlier podCIDR's tunnel address: left, it would make that address local here
        _quiet(ipr.addr, "del", index=idx, address=address, prefixlen=prefixlen)
    if (vtep.address, 32) not in have:
        ipr.addr("add", index=idx, address=vtep.address, prefixlen=32)
    ipr.link("set", index=idx, state="up")
    return idx


def sync_peers(ipr: IPRoute, idx: int, peers: tuple[VxlanPeer, ...]) -> None:
    """FDB (MAC -> underlay IP) and permanent neighbour (tunnel IP -> MAC) entries on our
    VXLAN device: exactly one per peer; others on that device are removed."""
    want_fdb = {(p.vtep_mac, p.node_ip) for p in peers}
    want_neigh = {(p.vtep_ip, p.vtep_mac) for p in peers}
    for e in ipr.fdb("dump", ifindex=idx):
        if e["ifindex"] != idx:
            continue
        mac, dst = str(e.get_attr("NDA_LLADDR")), str(e.get_attr("NDA_DST") or "")
        if dst and (mac, dst) not in want_fdb:
            _quiet(ipr.fdb, "del", ifindex=idx, lladdr=mac, dst=dst)
    for mac, dst in sorted(want_fdb):
        ipr.fdb("replace", ifindex=idx, lladdr=mac, dst=dst, state=NUD_PERMANENT, flags=NTF_SELF)
    for n in ipr.get_neighbours(ifindex=idx, family=socket.AF_INET):
        key = (str(n.get_attr("NDA_DST")), str(n.get_attr("NDA_LLADDR")))
        if n["ifindex"] == idx and key not in want_neigh:
            _quiet(ipr.neigh, "del", ifindex=idx, dst=key[0], lladdr=key[1])
    for dst, mac in sorted(want_neigh):
        ipr.neigh("replace", ifindex=idx, dst=dst, lladdr=mac, state=NUD_PERMANENT)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except NetlinkError as e:
        if e.code not in (errno.ENOENT, errno.ESRCH, errno.ENODEV):
            raise


def _delete_route(ipr: IPRoute, key: RouteKey, msg: Any) -> None:
    """Delete one of our routes (gone already is fine)."""
    _quiet(
        ipr.route, "del", dst=key[0], table=MAIN_TABLE, proto=RTPROT_PYKUBELET, family=msg["family"]
    )


def _route_key(ipr: IPRoute, r: Route) -> RouteKey:
    oif = 0
    if r.device:
        idx = ipr.link_lookup(ifname=r.device)
        if not idx:
            raise RuntimeError(f"route to {r.dst} (node {r.node}): device {r.device} missing")
        oif = int(idx[0])
    return (str(ipaddress.ip_network(r.dst)), r.gateway, oif)


def apply(ipr: IPRoute, p: RoutePlan, *, vxlan_device: str | None = None) -> list[str]:
    """Make the kernel match the plan. Returns one error line per route the kernel refused
    (for example a host-gw gateway that is not on a directly connected network); the others
    are still applied. `vxlan_device` is removed when the plan has no VTEP."""
    errors: list[str] = []
    if p.vtep is not None:
        sync_peers(ipr, ensure_vtep(ipr, p.vtep), p.peers)
    elif vxlan_device:
        link = _lookup(ipr, vxlan_device)
        if link is not None and _linkinfo(link)[0] == "vxlan":
            _quiet(ipr.link, "del", index=link["index"])
    have = owned_routes(ipr)
    want: dict[RouteKey, Route] = {}
    for r in p.routes:
        try:
            want[_route_key(ipr, r)] = r
        except RuntimeError as e:
            errors.append(str(e))
    wanted_dsts = {k[0] for k in want}
    for key, msg in have.items():
        if key not in want:
            # a dst still wanted with another gateway is replaced below, not deleted first
            if key[0] in wanted_dsts:
                continue
            _delete_route(ipr, key, msg)
    foreign = foreign_routes(ipr)
    for key, r in want.items():
        if key in have:
            continue
        if key[0] in foreign:
            errors.append(
                f"route {key[0]} (node {r.node}): the table already has a route to it that "
                f"pykubelet did not make (protocol {foreign[key[0]]}); left alone"
            )
            continue
        kwargs: dict[str, Any] = {
            "dst": key[0],
            "gateway": r.gateway,
            "proto": RTPROT_PYKUBELET,
            "table": MAIN_TABLE,
        }
        if key[2]:
            kwargs["oif"] = key[2]
        if r.onlink:
            kwargs["flags"] = RTNH_F_ONLINK
        try:
            ipr.route("replace", **kwargs)
        except NetlinkError as e:
            errors.append(
                f"route {key[0]} via {r.gateway} (node {r.node}): {e.args[-1]}"
                + (
                    " (gateway not on a local network; use --route-mode vxlan?)"
                    if e.code == errno.ENETUNREACH
                    else ""
                )
            )
    return errors


def remove_all(ipr: IPRoute, vxlan_device: str | None = None) -> int:
    """Delete every route we made (and our VXLAN device); returns how many routes went."""
    have = owned_routes(ipr)
    for key, msg in have.items():
        _delete_route(ipr, key, msg)
    if vxlan_device:
        link = _lookup(ipr, vxlan_device)
        if link is not None and _linkinfo(link)[0] == "vxlan":
            _quiet(ipr.link, "del", index=link["index"])
    return len(have)
