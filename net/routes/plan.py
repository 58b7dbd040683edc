"""The node-route planner: v1 Node dicts in, the routes/VXLAN peers this node should have out.
Pure: no kernel, no apiserver; bad or incomplete Nodes are skipped with a reason, never raised."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kube.jsontypes import JsonMap

HOST_GW = "host-gw"
VXLAN = "vxlan"
MODES = (HOST_GW, VXLAN)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Route:
    """One route to another node's pod CIDR: `dst` via `gateway` (on `device` when set)."""

    node: str
    dst: str
    gateway: str
    device: str | None = None
    onlink: bool = False


@dataclass(frozen=True)
class VxlanPeer:
    """A remote VTEP: its MAC and tunnel address (FDB + neighbour entries), at `node_ip`."""

    node: str
    node_ip: str
    vtep_mac: str
    vtep_ip: str


@dataclass(frozen=True)
class LocalVtep:
    """This node's own VXLAN device: name, MAC, tunnel address (/32 or /128), underlay IP."""

    device: str
    mac: str
    address: str
    local_ip: str
    vni: int
    port: int


@dataclass(frozen=True)
class RoutePlan:
    routes: tuple[Route, ...] = ()
    peers: tuple[VxlanPeer, ...] = ()
    vtep: LocalVtep | None = None
    skipped: tuple[str, ...] = field(default=())
    """One line per Node left out, naming the node and the reason."""


def vtep_mac(node_ip: str) -> str:
    """The VXLAN device MAC of the node at `node_ip`: locally administered, derived from the
    IP so every node computes every peer's MAC without annotations (0e:pk + last 4 bytes)."""
    packed = ipaddress.ip_address(node_ip).packed[-4:]
    return "0e:70:" + ":".join(f"{b:02x}" for b in packed)


def vtep_address(pod_cidr: str) -> str:
    """The tunnel address of a node: the network address of its pod CIDR (never a pod IP,
    since IPAM starts after the gateway)."""
    return str(ipaddress.ip_network(pod_cidr, strict=False).network_address)


def vxlan_device(vni: int) -> str:
    return f"pykvx.{vni}"[:15]


def _name(node: JsonMap) -> str:
    meta = node.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else ""


def internal_ips(node: JsonMap) -> list[str]:
    """The Node's InternalIP addresses in status order (valid IPs only)."""
    status = node.get("status")
    addrs = status.get("addresses") if isinstance(status, Mapping) else None
    out: list[str] = []
    for a in addrs if isinstance(addrs, list) else []:
        if isinstance(a, Mapping) and a.get("type") == "InternalIP":
            try:
                out.append(str(ipaddress.ip_address(str(a.get("address", "")))))
            except ValueError:
                continue
    return out


def pod_cidrs(node: JsonMap) -> list[IPNetwork]:
    """spec.podCIDRs, or spec.podCIDR when the list is absent; invalid entries dropped."""
    spec = node.get("spec")
    if not isinstance(spec, Mapping):
        return []
    raw = spec.get("podCIDRs")
    if not isinstance(raw, list) or not raw:
        raw = [spec["podCIDR"]] if spec.get("podCIDR") else []
    out: list[IPNetwork] = []
    for c in raw:
        try:
            out.append(ipaddress.ip_network(str(c), strict=False))
        except ValueError:
            continue
    return out


def _ip_for(ips: Sequence[str], version: int) -> str:
    return next((ip for ip in ips if ipaddress.ip_address(ip).version == version), "")


def plan(
    node_name: str,
    nodes: Sequence[JsonMap],
    *,
    mode: str = HOST_GW,
    vxlan_id: int = 1,
    vxlan_port: int = 8472,
    device: str | None = None,
) -> RoutePlan:
    """What this node (`node_name`) should have to reach every other node's pod CIDRs.

    host-gw: one route per remote pod CIDR via the remote InternalIP of the same family (the
    nodes must share an L2 network). vxlan (IPv4): a VXLAN device whose address is the network
    address of our pod CIDR; per remote node an FDB entry (its VTEP MAC -> its InternalIP), a
    permanent neighbour (its tunnel address -> its VTEP MAC) and an onlink route via that
    tunnel address. Raises ValueError only for a bad mode/VNI/port."""
    if mode not in MODES:
        raise ValueError(f"route mode {mode!r}: must be one of {', '.join(MODES)}")
    if not 0 < vxlan_id < 2**24:
        raise ValueError(f"vxlan id {vxlan_id}: must be 1..16777215")
    if not 0 < vxlan_port < 65536:
        raise ValueError(f"vxlan port {vxlan_port}: must be 1..65535")
    skipped: list[str] = []
    me = next((n for n in nodes if isinstance(n, Mapping) and _name(n) == node_name), None)
    own_cidrs = pod_cidrs(me) if me is not None else []
    own_ips = internal_ips(me) if me is not None else []
    dev = device or (vxlan_device(vxlan_id) if mode == VXLAN else None)
    vtep: LocalVtep | None = None
    if mode == VXLAN:
        own4 = [c for c in own_cidrs if c.version == 4]
        local = _ip_for(own_ips, 4)
        if not own4 or not local or dev is None:
            why = "an IPv4 podCIDR" if not own4 else "an IPv4 InternalIP"
            return RoutePlan(skipped=(f"node {node_name}: vxlan mode needs {why} on this node",))
        vtep = LocalVtep(
            dev, vtep_mac(local), vtep_address(str(own4[0])), local, vxlan_id, vxlan_port
        )
    routes: list[Route] = []
    peers: list[VxlanPeer] = []
    seen: set[str] = set()
    routed: list[tuple[str, IPNetwork]] = []  # (node, podCIDR) already given a route
    for node in sorted((n for n in nodes if isinstance(n, Mapping)), key=_name):
        name = _name(node)
        if not name or name == node_name:
            continue
        if name in seen:
            skipped.append(f"node {name}: listed twice")
            continue
        seen.add(name)
        cidrs, ips = pod_cidrs(node), internal_ips(node)
        if not cidrs:
            skipped.append(f"node {name}: no podCIDR yet")
            continue
        if not ips:
            skipped.append(f"node {name}: no InternalIP address")
            continue
        for cidr in cidrs:
            clash = next(
                (c for c in own_cidrs if c.version == cidr.version and c.overlaps(cidr)), None
            )
            if clash is not None:
                skipped.append(f"node {name}: podCIDR {cidr} overlaps this node's {clash}")
                continue
            taken = next((r for r in routed if r[1].overlaps(cidr)), None)
            if taken is not None:
                skipped.append(f"node {name}: podCIDR {cidr} overlaps node {taken[0]}'s {taken[1]}")
                continue
            gw_ip = _ip_for(ips, cidr.version)
            if mode == VXLAN:
                if cidr.version != 4:
                    skipped.append(f"node {name}: podCIDR {cidr}: vxlan mode is IPv4 only")
                    continue
                if not gw_ip:
                    skipped.append(f"node {name}: no IPv4 InternalIP for {cidr}")
                    continue
                peer = VxlanPeer(name, gw_ip, vtep_mac(gw_ip), vtep_address(str(cidr)))
                if peer not in peers:
                    peers.append(peer)
                routes.append(Route(name, str(cidr), peer.vtep_ip, dev, onlink=True))
            else:
                if not gw_ip:
                    skipped.append(f"node {name}: no IPv{cidr.version} InternalIP for {cidr}")
                    continue
                routes.append(Route(name, str(cidr), gw_ip, dev))
            routed.append((name, cidr))
    return RoutePlan(tuple(routes), tuple(peers), vtep, tuple(skipped))
