"""Netlink encoding of the IPVS planner's ops (pure: bytes out, nothing sent).
IPVS service/dest ops are generic-netlink "IPVS" messages (pyroute2's ipvsmsg); kube-ipvs0
address ops are rtnetlink RTM_NEWADDR/RTM_DELADDR; ipset ops become `ipset restore` text.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass

from pyroute2.ipvs import IPVSDest, IPVSService
from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
)
from pyroute2.netlink.generic import ipvs as ipvs_nl
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from net.proxy.ipvs.plan import (
    DUMMY_INTERFACE,
    IPSETS,
    IpvsState,
    Op,
    RealServer,
    VirtualServer,
)

IP_VS_SVC_F_PERSISTENT = 0x1
IP_VS_CONN_F_MASQ = 0  # fwd_method: masquerading (NAT), as upstream uses
_PROTO = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": socket.IPPROTO_SCTP}

_IPVS_CMDS = {
    "add-service": (ipvs_nl.IPVS_CMD_NEW_SERVICE, NLM_F_CREATE | NLM_F_EXCL),
    "update-service": (ipvs_nl.IPVS_CMD_SET_SERVICE, NLM_F_REPLACE),
    "del-service": (ipvs_nl.IPVS_CMD_DEL_SERVICE, 0),
    "add-dest": (ipvs_nl.IPVS_CMD_NEW_DEST, NLM_F_CREATE | NLM_F_EXCL),
    "update-dest": (ipvs_nl.IPVS_CMD_SET_DEST, NLM_F_REPLACE),
    "del-dest": (ipvs_nl.IPVS_CMD_DEL_DEST, 0),
}


@dataclass(frozen=True)
class Encoded:
    op: Op
    kind: str  # "ipvs" (generic netlink) or "rtnl"
    data: bytes


def service_attrs(vs: VirtualServer) -> IPVSService:
    persistent = vs.persistent_timeout > 0
    return IPVSService(
        addr=vs.address,
        port=vs.port,
        protocol=_PROTO[vs.protocol],
        sched_name=vs.scheduler,
        timeout=vs.persistent_timeout,
        flags={"flags": IP_VS_SVC_F_PERSISTENT if persistent else 0, "mask": 0xFFFF},
    )


def dest_attrs(rs: RealServer) -> IPVSDest:
    return IPVSDest(addr=rs.address, port=rs.port, weight=rs.weight, fwd_method=IP_VS_CONN_F_MASQ)


_PROTO_NAMES = {num: name for name, num in _PROTO.items()}


def virtual_server_of(msg: ipvs_nl.ipvsmsg) -> VirtualServer:
    """The VirtualServer of one IPVS_CMD_GET_SERVICE dump reply. Reads the netlink attributes
    themselves: pyroute2's IPVSService is a dict (no .protocol/.addr attributes) and its
    from_message keeps some keys under their IPVS_SVC_ATTR_ names."""
    svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    flags = svc.get_attr("IPVS_SVC_ATTR_FLAGS") or {}
    persistent = bool(flags.get("flags", 0) & IP_VS_SVC_F_PERSISTENT)
    return VirtualServer(
        svc.get_attr("IPVS_SVC_ATTR_ADDR"),
        svc.get_attr("IPVS_SVC_ATTR_PORT") or 0,
        _PROTO_NAMES.get(svc.get_attr("IPVS_SVC_ATTR_PROTOCOL"), "TCP"),
        svc.get_attr("IPVS_SVC_ATTR_SCHED_NAME") or "",
        (svc.get_attr("IPVS_SVC_ATTR_TIMEOUT") or 0) if persistent else 0,
    )


def real_server_of(msg: ipvs_nl.ipvsmsg) -> RealServer:
    """The RealServer of one IPVS_CMD_GET_DEST dump reply."""
    dest = msg.get_attr("IPVS_CMD_ATTR_DEST")
    return RealServer(
        dest.get_attr("IPVS_DEST_ATTR_ADDR"),
        dest.get_attr("IPVS_DEST_ATTR_PORT") or 0,
        dest.get_attr("IPVS_DEST_ATTR_WEIGHT") or 0,
    )


def encode_ipvs(op: Op, family_id: int, seq: int = 0) -> bytes:
    """The generic netlink message for a service/dest op; `family_id` is the id the kernel
    gives the "IPVS" family (resolved at run time with CTRL_CMD_GETFAMILY)."""
    cmd, flags = _IPVS_CMDS[op.action]
    assert op.service is not None
    svc = service_attrs(op.service)
    msg = ipvs_nl.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = ipvs_nl.GENL_VERSION
    if op.dest is None:
        attrs = svc.dump_key() if op.action == "del-service" else svc.dump_nla()
        msg["attrs"] = [("IPVS_CMD_ATTR_SERVICE", attrs)]
    else:
        msg["attrs"] = [
            ("IPVS_CMD_ATTR_SERVICE", svc.dump_key()),
            ("IPVS_CMD_ATTR_DEST", dest_attrs(op.dest).dump_nla()),
        ]
    msg["header"]["type"] = family_id
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def encode_address(op: Op, ifindex: int, seq: int = 0) -> bytes:
    """RTM_NEWADDR / RTM_DELADDR of a /32 on kube-ipvs0 (interface index `ifindex`)."""
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET
    msg["prefixlen"] = 32
    msg["index"] = ifindex
    msg["attrs"] = [("IFA_LOCAL", op.address), ("IFA_ADDRESS", op.address)]
    add = op.action == "add-address"
    msg["header"]["type"] = RTM_NEWADDR if add else RTM_DELADDR
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if add else 0)
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def encode_dummy_link(seq: int = 0) -> bytes:
    """RTM_NEWLINK creating the kube-ipvs0 dummy interface (needs CONFIG_DUMMY)."""
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["attrs"] = [
        ("IFLA_IFNAME", DUMMY_INTERFACE),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "dummy")]}),
    ]
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def encode(ops: Iterable[Op], *, family_id: int, ifindex: int) -> list[Encoded]:
    """Netlink messages for every non-ipset op, numbered from sequence 1."""
    out: list[Encoded] = []
    for op in ops:
        seq = len(out) + 1
        if op.action.endswith("address"):
            out.append(Encoded(op, "rtnl", encode_address(op, ifindex, seq)))
        elif op.action in _IPVS_CMDS:
            out.append(Encoded(op, "ipvs", encode_ipvs(op, family_id, seq)))
    return out


def ipset_create_lines() -> list[str]:
    """`create` lines of every set IPVS mode uses (bitmap sets need their port range)."""
    out = []
    for name, kind in IPSETS.items():
        extra = " range 0-65535" if kind.startswith("bitmap:port") else ""
        out.append(f"create {name} {kind}{extra}")
    return out


def ipset_restore_text(ops: Iterable[Op], *, create: bool = False) -> str:
    """`ipset restore -exist` input for the ipset ops (with `create` lines for every set)."""
    lines = ipset_create_lines() if create else []
    for op in ops:
        if op.action in ("ipset-add", "ipset-del"):
            lines.append(f"{op.action[6:]} {op.ipset} {op.entry}")
    return "\n".join(lines) + ("\n" if lines else "")


def ipset_refill_text(want: IpvsState) -> str:
    """`ipset restore -exist` input creating every set and refilling it from `want`."""
    lines = ipset_create_lines()
    for name in IPSETS:
        lines.append(f"flush {name}")
        lines.extend(f"add {name} {entry}" for entry in sorted(want.ipsets.get(name, ())))
    return "\n".join(lines) + "\n"
