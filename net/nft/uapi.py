"""The kernel's nf_tables and nfnetlink numbers (linux/netfilter/nf_tables.h, nfnetlink.h) and
nft 1.0.6's datatypes, as facts: the IR's names mapped to them. Constants only; no encoding here.
"""

from __future__ import annotations

from typing import NamedTuple

from . import ir

# ---- netlink / nfnetlink --------------------------------------------------------------------

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
NFNL_MSG_BATCH_BEGIN = 16
NFNL_MSG_BATCH_END = 17
NFNL_SUBSYS_NFTABLES = 10
NFPROTO_IPV4 = 2

# NFT_MSG_*
NEWTABLE, GETTABLE, DELTABLE = 0, 1, 2
NEWCHAIN, GETCHAIN, DELCHAIN = 3, 4, 5
NEWRULE, GETRULE, DELRULE = 6, 7, 8
NEWSET, GETSET, DELSET = 9, 10, 11
NEWSETELEM, GETSETELEM, DELSETELEM = 12, 13, 14

# registers, verdicts
REG_VERDICT, REG_1, REG_2, REG32_00 = 0, 1, 2, 8
NF_DROP, NF_ACCEPT = 0, 1
NFT_CONTINUE, NFT_JUMP, NFT_GOTO, NFT_RETURN = -1, -3, -4, -5
VERDICT_CODES = {
    ir.VerdictKind.ACCEPT: NF_ACCEPT,
    ir.VerdictKind.DROP: NF_DROP,
    ir.VerdictKind.RETURN: NFT_RETURN,
    ir.VerdictKind.JUMP: NFT_JUMP,
    ir.VerdictKind.GOTO: NFT_GOTO,
}
HOOKS = {
    ir.Hook.PREROUTING: 0,
    ir.Hook.INPUT: 1,
    ir.Hook.FORWARD: 2,
    ir.Hook.OUTPUT: 3,
    ir.Hook.POSTROUTING: 4,
}

# NFTA_* attributes (per object)
TABLE_NAME, TABLE_FLAGS = 1, 2
CHAIN_TABLE, CHAIN_NAME, CHAIN_HOOK, CHAIN_POLICY, CHAIN_TYPE, CHAIN_USERDATA = 1, 3, 4, 5, 7, 12
HOOK_HOOKNUM, HOOK_PRIORITY = 1, 2
RULE_TABLE, RULE_CHAIN, RULE_EXPRESSIONS, RULE_USERDATA = 1, 2, 4, 7
SET_TABLE, SET_NAME, SET_FLAGS, SET_KEY_TYPE, SET_KEY_LEN = 1, 2, 3, 4, 5
SET_DATA_TYPE, SET_DATA_LEN, SET_ID, SET_TIMEOUT, SET_USERDATA = 6, 7, 10, 11, 13
SET_ELEM_LIST_TABLE, SET_ELEM_LIST_SET, SET_ELEM_LIST_ELEMENTS = 1, 2, 3
SET_ELEM_KEY, SET_ELEM_DATA = 1, 2
LIST_ELEM = 1
DATA_VALUE, DATA_VERDICT = 1, 2
VERDICT_CODE, VERDICT_CHAIN = 1, 2
EXPR_NAME, EXPR_DATA = 1, 2

NFT_SET_ANONYMOUS, NFT_SET_MAP, NFT_SET_TIMEOUT, NFT_SET_EVAL = 0x1, 0x8, 0x10, 0x20
NFT_DATA_VERDICT_TYPE = 0xFFFFFF00
NF_NAT_RANGE_PROTO_SPECIFIED = 0x2
NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x10

# nft's datatypes (TYPE_BITS 6 per concatenated field), lengths and byte order
TYPE_IDS = {
    "ipv4_addr": 7,
    "inet_proto": 12,
    "inet_service": 13,
    "ct_state": 26,
    "fib_addrtype": 38,
}
BYTEORDER_INVALID, BYTEORDER_HOST, BYTEORDER_BIG = 0, 1, 2


class FieldInfo(NamedTuple):
    type_name: str
    length: int  # bytes in a register / set key
    byteorder: int


FIELDS = {
    ir.Field.IP_SADDR: FieldInfo("ipv4_addr", 4, BYTEORDER_BIG),
    ir.Field.IP_DADDR: FieldInfo("ipv4_addr", 4, BYTEORDER_BIG),
    ir.Field.L4PROTO: FieldInfo("inet_proto", 1, BYTEORDER_INVALID),
    ir.Field.TH_DPORT: FieldInfo("inet_service", 2, BYTEORDER_BIG),
    ir.Field.FIB_DADDR_TYPE: FieldInfo("fib_addrtype", 4, BYTEORDER_HOST),
    ir.Field.FIB_SADDR_TYPE: FieldInfo("fib_addrtype", 4, BYTEORDER_HOST),
    ir.Field.CT_STATE: FieldInfo("ct_state", 4, BYTEORDER_HOST),
}
PROTOS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
ADDRTYPES = {
    "unspec": 0,
    "unicast": 1,
    "local": 2,
    "broadcast": 3,
    "anycast": 4,
    "multicast": 5,
    "blackhole": 6,
    "unreachable": 7,
    "prohibit": 8,
}
CT_BITS = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
# What nft 1.0.6 puts in a concatenated set key's userdata (NFTNL_UDATA_SET_KEY_TYPEOF).
CONCAT_UDATA = bytes.fromhex("030800040d0000000100")
