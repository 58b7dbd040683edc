"""Names pykubelet gives to host-side network objects: pod veths, iptables chains, aliases.
Pure functions; creates nothing. Linux interface names are at most 15 bytes."""

from __future__ import annotations

import hashlib

IFNAMSIZ = 15
VETH_PREFIX = "pk"


def host_veth_name(container_id: str, ifname: str = "eth0") -> str:
    """`pk` + 11 hex chars of sha256(container ID, ifname): stable for a sandbox, unique per
    sandbox (a pod recreated under the same name gets a new sandbox and so a new veth)."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return VETH_PREFIX + digest[: IFNAMSIZ - len(VETH_PREFIX) - 2]


def pod_alias(namespace: str, name: str) -> str:
    """The host veth's alias: `namespace/name` (what `ip -d link show` prints as `alias`)."""
    return f"{namespace}/{name}" if namespace or name else ""


def check_ifname(name: str) -> str:
    """A usable Linux interface name, or ValueError."""
    if not name or len(name.encode()) > IFNAMSIZ or name in (".", ".."):
        raise ValueError(f"invalid interface name {name!r} (1-{IFNAMSIZ} bytes)")
    if any(c in name for c in "/: \t\n"):
        raise ValueError(f"invalid interface name {name!r} (no '/', ':' or spaces)")
    return name


def chain_prefix(bridge: str) -> str:
    """Prefix of this network's iptables chains; unique per bridge (several clusters per host)."""
    return f"PYK-{bridge}-"


def hostport_chain(bridge: str) -> str:
    return chain_prefix(bridge) + "HP"


def masquerade_chain(bridge: str) -> str:
    return chain_prefix(bridge) + "MASQ"
