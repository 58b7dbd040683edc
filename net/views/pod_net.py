"""Collects a pod's network from both sides of its veth with pyroute2 (pod netns and host),
plus its hostPort DNAT rules; returns plain dicts (the JSON of `pykubelet net pod -o json`)."""

from __future__ import annotations

import concurrent.futures
import shlex
import socket
from typing import Any

from pyroute2 import IPRoute

from kube.jsontypes import JsonObject
from net import iptables, netns
from net.views.pod_lookup import PodSandbox

NUD_STATES = {
    0x01: "INCOMPLETE",
    0x02: "REACHABLE",
    0x04: "STALE",
    0x08: "DELAY",
    0x10: "PROBE",
    0x20: "FAILED",
    0x40: "NOARP",
    0x80: "PERMANENT",
    0x00: "NONE",
}
SCOPES = {0: "universe", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
PROTOS = {2: "kernel", 3: "boot", 4: "static", 16: "dhcp", 112: "pykubelet"}


def _kind(link: Any) -> str:
    info = link.get_attr("IFLA_LINKINFO")
    return str(info.get_attr("IFLA_INFO_KIND") or "") if info is not None else ""


def _names(ipr: IPRoute) -> dict[int, str]:
    return {int(m["index"]): str(m.get_attr("IFLA_IFNAME")) for m in ipr.get_links()}


def link_info(ipr: IPRoute, link: Any, names: dict[int, str]) -> JsonObject:
    idx = int(link["index"])
    master = link.get_attr("IFLA_MASTER")
    return {
        "ifindex": idx,
        "name": link.get_attr("IFLA_IFNAME"),
        "kind": _kind(link),
        "mac": link.get_attr("IFLA_ADDRESS"),
        "mtu": link.get_attr("IFLA_MTU"),
        "state": link.get_attr("IFLA_OPERSTATE"),
        "alias": link.get_attr("IFLA_IFALIAS") or "",
        "master": names.get(int(master), str(master)) if master else "",
        "peerIfindex": link.get_attr("IFLA_LINK") or 0,
        "addresses": [
            f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
            for a in ipr.get_addr(index=idx)
            if a["family"] == socket.AF_INET
        ],
    }


def routes(ipr: IPRoute, names: dict[int, str], oifs: set[int] | None = None) -> list[JsonObject]:
    """IPv4 routes of the main table (only those out of `oifs` when given)."""
    out = []
    for r in ipr.get_routes(family=socket.AF_INET, table=254):
        oif = int(r.get_attr("RTA_OIF") or 0)
        if oifs is not None and oif not in oifs:
            continue
        dst = r.get_attr("RTA_DST")
        out.append(
            {
                "dst": f"{dst}/{r['dst_len']}" if dst else "default",
                "gateway": r.get_attr("RTA_GATEWAY") or "",
                "dev": names.get(oif, ""),
                "scope": SCOPES.get(r["scope"], str(r["scope"])),
                "protocol": PROTOS.get(r["proto"], str(r["proto"])),
                "prefsrc": r.get_attr("RTA_PREFSRC") or "",
            }
        )
    return out


def neighbours(ipr: IPRoute, names: dict[int, str], ifindex: int, ip: str = "") -> list[JsonObject]:
    out = []
    for n in ipr.get_neighbours(family=socket.AF_INET, ifindex=ifindex):
        dst = n.get_attr("NDA_DST")
        if n["ifindex"] != ifindex or (ip and dst != ip):
            continue
        out.append(
            {
                "ip": dst,
                "mac": n.get_attr("NDA_LLADDR") or "",
                "dev": names.get(int(n["ifindex"]), ""),
                "state": NUD_STATES.get(n["state"], hex(n["state"])),
            }
        )
    return out


def pod_side(path: str) -> JsonObject:
    """Interfaces (but lo), routes and neighbours inside the pod's netns (worker thread)."""

    def work() -> JsonObject:
        with netns.entered(path), IPRoute() as ipr:
            names = _names(ipr)
            links = [link_info(ipr, m, names) for m in ipr.get_links()]
            links = [x for x in links if x["name"] != "lo"]
            neigh = [n for x in links for n in neighbours(ipr, names, x["ifindex"])]
            return {
                "netns": path,
                "interfaces": links,
                "routes": routes(ipr, names),
                "neighbours": neigh,
            }

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(work).result(timeout=30)


def host_side(peer_ifindex: int, pod_ip: str) -> JsonObject:
    """The host end of the pod's veth (by the peer ifindex the pod's eth0 reports), its
    bridge, the host routes out of the bridge and the route the kernel picks to the pod."""
    with IPRoute() as ipr:
        names = _names(ipr)
        links = ipr.get_links(peer_ifindex) if peer_ifindex in names else []
        if not links:
            return {
                "veth": None,
                "bridge": None,
                "routes": [],
                "routeToPod": None,
                "neighbours": [],
            }
        veth = link_info(ipr, links[0], names)
        bridge = None
        oifs = {veth["ifindex"]}
        master = links[0].get_attr("IFLA_MASTER")
        if master:
            bridge = link_info(ipr, ipr.get_links(master)[0], names)
            oifs.add(int(master))
        chosen = None
        if pod_ip:
            got = ipr.route("get", dst=pod_ip)
            if got:
                oif = int(got[0].get_attr("RTA_OIF") or 0)
                chosen = {
                    "dst": pod_ip,
                    "dev": names.get(oif, ""),
                    "gateway": got[0].get_attr("RTA_GATEWAY") or "",
                    "prefsrc": got[0].get_attr("RTA_PREFSRC") or "",
                }
        neigh_if = int(master) if master else veth["ifindex"]
        return {
            "veth": veth,
            "bridge": bridge,
            "routes": routes(ipr, names, oifs),
            "routeToPod": chosen,
            "neighbours": neighbours(ipr, names, neigh_if, pod_ip),
        }


def host_ports(sandbox_id: str) -> list[JsonObject]:
    """hostPort DNAT rules the plugin made for this sandbox (tagged `pykubelet <id>`)."""
    r = iptables.run(["-t", "nat", "-S"], check=False)
    out = []
    for line in r.stdout.splitlines():
        if f"pykubelet {sandbox_id}" not in line or "DNAT" not in line:
            continue
        args = shlex.split(line)
        opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-")}
        out.append(
            {
                "chain": args[1],
                "protocol": opt.get("-p", ""),
                "hostIP": opt.get("-d", "").removesuffix("/32"),
                "hostPort": int(opt.get("--dport", "0")),
                "to": opt.get("--to-destination", ""),
            }
        )
    return out


def collect(sb: PodSandbox) -> JsonObject:
    """Everything the view shows for one pod, as plain data."""
    data: JsonObject = {
        "pod": {
            "namespace": sb.namespace,
            "name": sb.name,
            "uid": sb.uid,
            "sandbox": sb.sandbox_id,
            "ip": sb.ip,
            "hostNetwork": sb.host_network,
        },
    }
    if sb.host_network or not sb.netns:
        data["pod"]["netns"] = "host"
        return data
    inside = pod_side(sb.netns)
    eth0 = next(
        (x for x in inside["interfaces"] if x["name"] == "eth0"),
        inside["interfaces"][0] if inside["interfaces"] else None,
    )
    data["podSide"] = inside
    data["hostSide"] = host_side(int(eth0["peerIfindex"]) if eth0 else 0, sb.ip)
    data["hostPorts"] = host_ports(sb.sandbox_id)
    return data
