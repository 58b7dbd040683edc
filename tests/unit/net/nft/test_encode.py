"""net/nft/encode.py: batches decode back to the nf_tables messages nft 1.0.6 sends for the same
text (values from the kernel uapi and `nft --debug=netlink`), for every IR construct."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from pyroute2.netlink.nfnetlink.nftsocket import nft_rule_msg

from net.nft import ir
from net.nft.decode import decode
from net.nft.encode import encode, encode_batch, op_messages

from .tables import SVC_KEY, every_construct, table_ops

F = ir.Field
K = ir.VerdictKind
NFT = 10 << 8  # NFNL_SUBSYS_NFTABLES in the message type
REQ, ACK, CREATE, APPEND = 0x1, 0x4, 0x400, 0x800


def be32(n: int) -> bytes:
    return struct.pack(">I", n & 0xFFFFFFFF)


def host32(n: int) -> bytes:
    return struct.pack("=I", n & 0xFFFFFFFF)


def tree(data: bytes) -> list[tuple[int, Any]]:
    """Attributes as (type, bytes) or (type, [children]) when NLA_F_NESTED is set."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        payload = data[i + 4 : i + length]
        out.append((kind & 0x3FFF, tree(payload) if kind & 0x8000 else payload))
        i += (length + 3) & ~3
    assert i == len(data), "attributes must fill the message exactly"
    return out


def as_dict(attrs: list[tuple[int, Any]]) -> dict[int, Any]:
    return {k: as_dict(v) if isinstance(v, list) else v for k, v in attrs}


def exprs(*items: ir.Expr) -> list[tuple[str, dict[int, Any]]]:
    """The kernel expressions of a rule made of `items`: (name, {attribute: value})."""
    (msg,) = op_messages(ir.AddRule("t", "c", ir.Rule(items)))
    attrs = dict(tree(msg.attrs))
    out = []
    for kind, elem in attrs[4]:
        assert kind == 1  # NFTA_LIST_ELEM
        e = dict(elem)
        out.append((e[1].rstrip(b"\0").decode(), as_dict(e[2])))
    return out


def payload(dreg: int, base: int, offset: int, length: int) -> tuple[str, dict[int, Any]]:
    return ("payload", {1: be32(dreg), 2: be32(base), 3: be32(offset), 4: be32(length)})


def cmp(op: int, value: bytes) -> tuple[str, dict[int, Any]]:
    return ("cmp", {1: be32(1), 2: be32(op), 3: {1: value}})


def bitwise(mask: bytes, xor: bytes) -> tuple[str, dict[int, Any]]:
    return ("bitwise", {1: be32(1), 2: be32(1), 6: be32(0), 3: be32(4), 4: {1: mask}, 5: {1: xor}})


def verdict(code: int, chain: str | None = None) -> tuple[str, dict[int, Any]]:
    v: dict[int, Any] = {1: be32(code)}
    if chain is not None:
        v[2] = chain.encode() + b"\0"
    return ("immediate", {1: be32(0), 2: {2: v}})


EQ, NEQ = 0, 1
NET, TRANSPORT = 1, 2
MARK = ("meta", {2: be32(3), 1: be32(1)})


@pytest.mark.parametrize(
    "items,expected",
    [
        (
            (ir.Cmp(F.IP_SADDR, "10.1.0.5"),),
            [payload(1, NET, 12, 4), cmp(EQ, bytes([10, 1, 0, 5]))],
        ),
        (
            (ir.Cmp(F.IP_DADDR, "10.96.0.1", negate=True),),
            [payload(1, NET, 16, 4), cmp(NEQ, bytes([10, 96, 0, 1]))],
        ),
        # byte-aligned prefixes load fewer bytes, others mask (as nft does)
        ((ir.Cmp(F.IP_SADDR, "10.88.0.0/16"),), [payload(1, NET, 12, 2), cmp(EQ, bytes([10, 88]))]),
        (
            (ir.Cmp(F.IP_SADDR, "10.1.2.3/32"),),
            [payload(1, NET, 12, 4), cmp(EQ, bytes([10, 1, 2, 3]))],
        ),
        (
            (ir.Cmp(F.IP_SADDR, "10.88.16.0/20", negate=True),),
            [
                payload(1, NET, 12, 4),
                bitwise(bytes([255, 255, 240, 0]), bytes(4)),
                cmp(NEQ, bytes([10, 88, 16, 0])),
            ],
        ),
        (
            (ir.Cmp(F.IP_DADDR, "0.0.0.0/0"),),
            [payload(1, NET, 16, 4), bitwise(bytes(4), bytes(4)), cmp(EQ, bytes(4))],
        ),
        ((ir.Cmp(F.L4PROTO, "udp"),), [("meta", {2: be32(16), 1: be32(1)}), cmp(EQ, b"\x11")]),
        ((ir.Cmp(F.L4PROTO, 132),), [("meta", {2: be32(16), 1: be32(1)}), cmp(EQ, b"\x84")]),
        ((ir.Cmp(F.TH_DPORT, 30080),), [payload(1, TRANSPORT, 2, 2), cmp(EQ, b"\x75\x80")]),
        (
            (ir.Cmp(F.FIB_DADDR_TYPE, "local"),),
            [("fib", {3: be32(2), 2: be32(3), 1: be32(1)}), cmp(EQ, host32(2))],
        ),
        (
            (ir.Cmp(F.FIB_SADDR_TYPE, "local", negate=True),),
            [("fib", {3: be32(1), 2: be32(3), 1: be32(1)}), cmp(NEQ, host32(2))],
        ),
        (
            (ir.Cmp(F.CT_STATE, "invalid"),),
            [("ct", {2: be32(0), 1: be32(1)}), bitwise(host32(1), bytes(4)), cmp(NEQ, bytes(4))],
        ),
        (
            (ir.Cmp(F.CT_STATE, "established,related"),),
            [("ct", {2: be32(0), 1: be32(1)}), bitwise(host32(6), bytes(4)), cmp(NEQ, bytes(4))],
        ),
        (
            (ir.Cmp(F.CT_STATE, "established,related", negate=True),),
            [("ct", {2: be32(0), 1: be32(1)}), bitwise(host32(6), bytes(4)), cmp(EQ, bytes(4))],
        ),
        (
            (ir.Cmp(F.CT_STATE, "new", negate=True),),
            [("ct", {2: be32(0), 1: be32(1)}), cmp(NEQ, host32(8))],
        ),
        (
            (ir.MarkTest(0x4000, False),),
            [MARK, bitwise(host32(0x4000), bytes(4)), cmp(EQ, bytes(4))],
        ),
        (
            (ir.MarkTest(0x4000, True),),
            [MARK, bitwise(host32(0x4000), bytes(4)), cmp(NEQ, bytes(4))],
        ),
        (
            (ir.MarkOr(0x4000),),
            [MARK, bitwise(host32(~0x4000), host32(0x4000)), ("meta", {2: be32(3), 3: be32(1)})],
        ),
        (
            (ir.MarkXor(0x4000),),
            [MARK, bitwise(host32(~0), host32(0x4000)), ("meta", {2: be32(3), 3: be32(1)})],
        ),
        (
            # a concatenated key: NFT_REG_1, then NFT_REG32_01, NFT_REG32_02 (32 bits each)
            (ir.InSet(SVC_KEY, "no-endpoints"),),
            [
                payload(1, NET, 16, 4),
                ("meta", {2: be32(16), 1: be32(9)}),
                payload(10, TRANSPORT, 2, 2),
                ("lookup", {2: be32(1), 1: b"no-endpoints\0"}),
            ],
        ),
        (
            (ir.InSet((F.IP_SADDR,), "aff", negate=True),),
            [payload(1, NET, 12, 4), ("lookup", {2: be32(1), 1: b"aff\0", 5: be32(1)})],
        ),
        (
            (ir.VMap(SVC_KEY, "service-ips"),),
            [
                payload(1, NET, 16, 4),
                ("meta", {2: be32(16), 1: be32(9)}),
                payload(10, TRANSPORT, 2, 2),
                ("lookup", {2: be32(1), 3: be32(0), 1: b"service-ips\0"}),
            ],
        ),
        (
            (ir.Random(3, 2),),
            [("numgen", {1: be32(1), 2: be32(3), 3: be32(1), 4: be32(0)}), cmp(EQ, host32(2))],
        ),
        (
            (ir.SetUpdate("aff"),),
            [payload(1, NET, 12, 4), ("dynset", {4: be32(1), 3: be32(1), 1: b"aff\0"})],
        ),
        ((ir.Verdict(K.ACCEPT),), [verdict(1)]),
        ((ir.Verdict(K.DROP),), [verdict(0)]),
        ((ir.Verdict(K.RETURN),), [verdict(-5)]),
        ((ir.Verdict(K.JUMP, "svc-a"),), [verdict(-3, "svc-a")]),
        ((ir.Verdict(K.GOTO, "ep-a"),), [verdict(-4, "ep-a")]),
        (
            (ir.Dnat("10.1.0.5", 8080),),
            [
                ("immediate", {1: be32(1), 2: {1: bytes([10, 1, 0, 5])}}),
                ("immediate", {1: be32(2), 2: {1: b"\x1f\x90"}}),
                ("nat", {1: be32(1), 2: be32(2), 3: be32(1), 5: be32(2), 7: be32(2)}),
            ],
        ),
        (
            (ir.Dnat("10.1.0.6"),),
            [
                ("immediate", {1: be32(1), 2: {1: bytes([10, 1, 0, 6])}}),
                ("nat", {1: be32(1), 2: be32(2), 3: be32(1)}),
            ],
        ),
        ((ir.Masquerade(),), [("masq", {1: be32(0x10)})]),
        ((ir.Masquerade(fully_random=False),), [("masq", {})]),
        ((ir.Reject(),), [("reject", {1: be32(0), 2: b"\x03"})]),
    ],
)
def test_expressions(
    items: tuple[ir.Expr, ...], expected: list[tuple[str, dict[int, Any]]]
) -> None:
    assert exprs(*items) == expected


def test_rule_message_and_comment_decode_with_pyroute2() -> None:
    rule = ir.Rule((ir.Cmp(F.L4PROTO, "tcp"), ir.Dnat("10.1.0.5", 8080)), comment="ns/svc:http")
    (_begin, m, _end) = decode(encode([ir.AddRule("tbl", "svc-a", rule)], seq=7))
    assert m.type == NFT | 6 and m.flags == REQ | ACK | CREATE | APPEND and m.seq == 8
    raw = encode([ir.AddRule("tbl", "svc-a", rule)])[20:]
    msg = nft_rule_msg(raw[: struct.unpack_from("=I", raw)[0]])
    msg.decode()
    assert msg.get_attr("NFTA_RULE_TABLE") == "tbl" and msg.get_attr("NFTA_RULE_CHAIN") == "svc-a"
    names = [e.get_attr("NFTA_EXPR_NAME") for e in msg.get_attr("NFTA_RULE_EXPRESSIONS")]
    assert names == ["meta", "cmp", "immediate", "immediate", "nat"]
    # NFTNL_UDATA_RULE_COMMENT (0), length with the NUL, the text, NUL
    assert dict(tree(m.attrs))[7] == b"\x00\x0cns/svc:http\x00"


def test_batch_framing_seq_and_flags_per_op() -> None:
    t = every_construct()
    ops: list[ir.Op] = [
        *table_ops(t),
        ir.FlushTable(t.name),
        ir.FlushChain(t.name, "ep-b"),
        ir.DeleteChain(t.name, "ep-b"),
        ir.FlushSet(t.name, "addrs"),
        ir.DeleteElements(t.name, "addrs", (ir.Element(("10.96.0.9",)),)),
        ir.DeleteSet(t.name, "addrs"),
        ir.DeleteTable(t.name),
    ]
    batch = encode_batch(ops, seq=100)
    msgs = decode(batch.data)
    begin, body, end = msgs[0], msgs[1:-1], msgs[-1]
    # BATCH_BEGIN / BATCH_END: family AF_UNSPEC, res_id NFNL_SUBSYS_NFTABLES, no ACK asked
    assert (begin.type, begin.flags, begin.seq, begin.family, begin.res_id) == (16, REQ, 100, 0, 10)
    assert (end.type, end.flags, end.seq, end.res_id) == (17, REQ, 101 + len(body), 10)
    assert [m.seq for m in body] == list(range(101, 101 + len(body)))
    assert batch.op_index == tuple(range(len(ops)))  # one message per op here
    assert all(m.family == 2 for m in body)
    # only the last message asks for an ACK (errors are reported unasked)
    assert [m.flags & (REQ | ACK) for m in body] == [REQ] * (len(body) - 1) + [REQ | ACK]
    kinds = {
        ir.AddTable: (0, CREATE),
        ir.AddChain: (3, CREATE),
        ir.AddSet: (9, CREATE),
        ir.AddElements: (12, CREATE),
        ir.AddRule: (6, CREATE | APPEND),
        ir.FlushTable: (8, 0),
        ir.FlushChain: (8, 0),
        ir.DeleteChain: (5, 0),
        ir.FlushSet: (14, 0),
        ir.DeleteElements: (14, 0),
        ir.DeleteSet: (11, 0),
        ir.DeleteTable: (2, 0),
    }
    for op, m in zip(ops, body, strict=True):
        kind, flags = kinds[type(op)]
        assert (m.type, m.flags & ~ACK) == (NFT | kind, REQ | flags), op
    flush_table = dict(tree(body[len(ops) - 7].attrs))
    assert flush_table == {1: b"pkh1-all\0"}  # DELRULE with the table only
    flush_set = dict(tree(body[len(ops) - 4].attrs))
    assert flush_set == {1: b"pkh1-all\0", 2: b"addrs\0"}  # DELSETELEM with no elements


def test_chain_messages() -> None:
    base = ir.BaseChain(ir.ChainType.NAT, ir.Hook.POSTROUTING, 100)
    (m,) = op_messages(ir.AddChain("t", ir.Chain("post", base, comment="snat")))
    assert as_dict(tree(m.attrs)) == {
        1: b"t\0",
        3: b"post\0",
        7: b"nat\0",
        5: be32(1),  # policy accept
        4: {1: be32(4), 2: be32(100)},  # NF_INET_POST_ROUTING, priority
        12: b"\x00\x05snat\x00",
    }
    (m,) = op_messages(
        ir.AddChain("t", ir.Chain("x", ir.BaseChain(ir.ChainType.FILTER, ir.Hook.OUTPUT, -100)))
    )
    assert as_dict(tree(m.attrs))[4] == {1: be32(3), 2: be32(-100)}
    (m,) = op_messages(ir.AddChain("t", ir.Chain("plain")))
    assert as_dict(tree(m.attrs)) == {1: b"t\0", 3: b"plain\0"}


def test_set_messages_carry_what_nft_needs_to_print_them() -> None:
    vmap = ir.SetDef("service-ips", SVC_KEY, verdict_map=True, comment="svc")
    (m,) = op_messages(ir.AddSet("t", vmap), set_id=5)
    assert as_dict(tree(m.attrs)) == {
        1: b"t\0",
        2: b"service-ips\0",
        3: be32(0x8),  # NFT_SET_MAP
        4: be32((7 << 12) | (12 << 6) | 13),  # ipv4_addr . inet_proto . inet_service
        5: be32(12),  # three fields, each padded to 4 bytes
        6: be32(0xFFFFFF00),  # NFT_DATA_VERDICT
        7: be32(0),
        10: be32(5),
        # udata: key byteorder, data byteorder, the concat typeof blob, data interval, comment
        13: bytes.fromhex("000400000000010400000000030800040d0000000100060400000000")
        + b"\x07\x04svc\x00",
    }
    aff = ir.SetDef("aff", (F.IP_SADDR,), timeout=10800)
    (m,) = op_messages(ir.AddSet("t", aff))
    assert as_dict(tree(m.attrs)) == {
        1: b"t\0",
        2: b"aff\0",
        3: be32(0x30),  # NFT_SET_TIMEOUT | NFT_SET_EVAL
        4: be32(7),
        5: be32(4),
        10: be32(1),
        11: struct.pack(">Q", 10_800_000),  # ms
        13: bytes.fromhex("000402000000"),  # big-endian key
    }
    (m,) = op_messages(ir.AddSet("t", ir.SetDef("p", (F.TH_DPORT,))))
    assert as_dict(tree(m.attrs))[5] == be32(2)


def test_element_keys_are_packed_per_field() -> None:
    goto = ir.Verdict(K.GOTO, "svc-a")
    sets = {
        ("t", "m"): ir.SetDef("m", SVC_KEY, verdict_map=True),
        ("t", "a"): ir.SetDef("a", (F.IP_SADDR,)),
    }
    (m,) = op_messages(
        ir.AddElements("t", "m", (ir.Element(("10.96.0.1", "tcp", 80), goto),)), sets
    )
    attrs = dict(tree(m.attrs))
    assert attrs[1] == b"t\0" and attrs[2] == b"m\0"
    ((kind, element),) = attrs[3]
    assert kind == 1 and as_dict(element) == {
        1: {1: bytes([10, 96, 0, 1]) + b"\x06\0\0\0" + b"\x00\x50\0\0"},
        2: {2: {1: be32(-4), 2: b"svc-a\0"}},
    }
    (m,) = op_messages(
        ir.DeleteElements("t", "m", (ir.Element(("10.96.0.1", 17, 53), goto),)), sets
    )
    ((_kind, element),) = dict(tree(m.attrs))[3]
    assert as_dict(element) == {1: {1: bytes([10, 96, 0, 1]) + b"\x11\0\0\0" + b"\x00\x35\0\0"}}
    (m,) = op_messages(ir.AddElements("t", "a", (ir.Element(("10.0.0.1",)),)), sets)
    ((_kind, element),) = dict(tree(m.attrs))[3]
    assert as_dict(element) == {1: {1: bytes([10, 0, 0, 1])}}


def test_big_element_ops_are_split_and_mapped_back_to_their_op() -> None:
    elements = tuple(
        ir.Element((f"10.{i // 250}.{i % 250}.1", "tcp", 80), ir.Verdict(K.GOTO, "svc"))
        for i in range(3000)
    )
    vmap = ir.SetDef("m", SVC_KEY, verdict_map=True)
    ops: list[ir.Op] = [
        ir.AddSet("t", vmap),
        ir.AddElements("t", "m", elements),
        ir.FlushSet("t", "m"),
    ]
    batch = encode_batch(ops)
    msgs = decode(batch.data)[1:-1]
    assert len(msgs) > 3 and batch.op_index == (0, *[1] * (len(msgs) - 2), 2)
    total = 0
    for m in msgs[1:-1]:
        attrs = dict(tree(m.attrs))
        assert len(m.attrs) < 65535
        total += len(attrs[3])
    assert total == 3000


def test_element_ops_need_their_sets_definition() -> None:
    op = ir.AddElements("t", "s", (ir.Element(("10.0.0.1",)),))
    with pytest.raises(ValueError, match="unknown key types"):
        encode([op])
    assert encode([op], sets={("t", "s"): ir.SetDef("s", (F.IP_DADDR,))})
    bad = ir.SetDef("s", (F.IP_DADDR,), verdict_map=True)
    with pytest.raises(ValueError, match="needs a verdict"):
        encode([op], sets={("t", "s"): bad})
    with pytest.raises(ValueError, match="does not match"):
        encode([ir.AddSet("t", ir.SetDef("s", SVC_KEY)), op])


@pytest.mark.parametrize(
    "item,error",
    [
        (ir.Cmp(F.TH_DPORT, 70000), "th dport"),
        (ir.Cmp(F.TH_DPORT, "http"), "th dport"),
        (ir.Cmp(F.IP_DADDR, "10.0.0.300"), "ip daddr"),
        (ir.Cmp(F.IP_SADDR, "10.88.1.0/16"), "ip saddr"),
        (ir.Cmp(F.L4PROTO, "tcpx"), "meta l4proto"),
        (ir.Cmp(F.CT_STATE, "sleepy"), "ct state"),
        (ir.Random(3, 3), "out of range"),
        (ir.Dnat("10.0.0.1", 0), "port out of range"),
        (ir.Dnat("nowhere"), "dnat address"),
        (ir.Verdict(K.JUMP), "needs a chain"),
        (ir.Verdict(K.JUMP, "bad name"), "invalid nft"),
        (ir.InSet((), "s"), "at least one field"),
    ],
)
def test_bad_values_are_refused(item: ir.Expr, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        encode([ir.AddRule("t", "c", ir.Rule((item,)))])


def test_comments_are_checked_like_the_text() -> None:
    with pytest.raises(ValueError, match="comment"):
        encode([ir.AddRule("t", "c", ir.Rule((ir.Verdict(K.ACCEPT),), comment='a "b"'))])
    with pytest.raises(ValueError, match="comment"):
        encode([ir.AddChain("t", ir.Chain("c", comment="x" * 200))])
