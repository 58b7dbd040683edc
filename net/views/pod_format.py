"""Renders the data of `pykubelet net pod` (net/views/pod_net.py) as readable tables.
Pure: a dict in, text out."""

from __future__ import annotations

from collections.abc import Sequence

from kube.jsontypes import JsonMap


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [
        [str(c) for c in headers],
        *[[str(c) if c not in ("", None) else "-" for c in r] for r in rows],
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _link_row(side: str, link: JsonMap, extra: str) -> list[object]:
    return [
        side,
        link["ifindex"],
        link["name"],
        link["kind"],
        link["mac"],
        link["mtu"],
        link["state"],
        ",".join(link["addresses"]),
        extra,
    ]


def render(data: JsonMap) -> str:
    p = data["pod"]
    out = [
        f"pod {p['namespace']}/{p['name']}  uid {p['uid']}  sandbox {p['sandbox'][:13]}  "
        f"ip {p['ip'] or '-'}"
    ]
    if p.get("hostNetwork") or "podSide" not in data:
        out.append("network: host (hostNetwork pod: no veth, no pod netns)")
        return "\n".join(out)
    inside, host = data["podSide"], data["hostSide"]
    out.append(f"netns {inside['netns']}")
    rows = []
    for link in inside["interfaces"]:
        rows.append(_link_row("pod", link, f"peer ifindex {link['peerIfindex']}"))
    veth, bridge = host.get("veth"), host.get("bridge")
    if veth:
        rows.append(
            _link_row("host", veth, f"bridge {veth['master'] or '-'}  alias {veth['alias'] or '-'}")
        )
    if bridge:
        rows.append(_link_row("host", bridge, "(the veth's bridge)"))
    out += [
        "",
        "INTERFACES",
        table(("SIDE", "IFINDEX", "NAME", "KIND", "MAC", "MTU", "STATE", "ADDRESSES", ""), rows),
    ]
    if not veth:
        out.append("host end of the veth: not found in this netns")
    rrows = [
        ["pod", r["dst"], r["gateway"], r["dev"], r["scope"], r["protocol"]]
        for r in inside["routes"]
    ]
    rrows += [
        ["host", r["dst"], r["gateway"], r["dev"], r["scope"], r["protocol"]]
        for r in host.get("routes", [])
    ]
    out += ["", "ROUTES", table(("SIDE", "DST", "GATEWAY", "DEV", "SCOPE", "PROTO"), rrows)]
    chosen = host.get("routeToPod")
    if chosen:
        via = f" via {chosen['gateway']}" if chosen["gateway"] else ""
        out.append(
            f"host route to {chosen['dst']}:{via} dev {chosen['dev']}"
            + (f" src {chosen['prefsrc']}" if chosen["prefsrc"] else "")
        )
    nrows = [["pod", n["ip"], n["mac"], n["dev"], n["state"]] for n in inside["neighbours"]]
    nrows += [["host", n["ip"], n["mac"], n["dev"], n["state"]] for n in host["neighbours"]]
    out += [
        "",
        "NEIGHBOURS",
        table(("SIDE", "IP", "MAC", "DEV", "STATE"), nrows) if nrows else "(none)",
    ]
    hp = data.get("hostPorts", [])
    hrows = [[h["protocol"], h["hostIP"] or "*", h["hostPort"], h["to"], h["chain"]] for h in hp]
    out += [
        "",
        "HOSTPORTS",
        table(("PROTO", "HOST IP", "HOST PORT", "TO", "CHAIN"), hrows) if hrows else "(none)",
    ]
    return "\n".join(out)
