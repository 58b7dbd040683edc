"""net/nft/netlink.py without a kernel: mapping the ACKs of a batch back to its ops."""

from __future__ import annotations

import errno
import struct

from net.nft import ir
from net.nft.decode import decode
from net.nft.encode import encode_batch
from net.nft.netlink import Acks, describe

from .tables import SVC_KEY

K = ir.VerdictKind


def reply(seq: int, err: int = 0, ext: str | None = None) -> bytes:
    """An NLMSG_ERROR (an ACK when err is 0) for the message `seq`, capped like the kernel
    sends it with NETLINK_CAP_ACK, with an extended-ack message when `ext` is given."""
    body = struct.pack("=i", -err) + struct.pack("=IHHII", 100, 0xA06, 0x5, seq, 0)
    flags = 0x100  # NLM_F_CAPPED
    if ext is not None:
        flags |= 0x200  # NLM_F_ACK_TLVS
        text = ext.encode() + b"\0"
        body += struct.pack("=HH", 4 + len(text), 1) + text + b"\0" * (-len(text) % 4)
    return struct.pack("=IHHII", 16 + len(body), 2, flags, seq, 1234) + body


OPS: list[ir.Op] = [
    ir.AddTable("t"),
    ir.AddSet("t", ir.SetDef("m", SVC_KEY, verdict_map=True)),
    ir.AddElements(
        "t",
        "m",
        tuple(
            ir.Element((f"10.0.{i // 250}.{i % 250}", "tcp", 80), ir.Verdict(K.ACCEPT))
            for i in range(2000)
        ),
    ),
    ir.DeleteChain("t", "gone"),
]


def test_the_last_ack_ends_a_good_batch() -> None:
    batch = encode_batch(OPS, seq=40)
    n = len(batch.op_index)
    assert n > len(OPS)  # the element op needed several messages
    acks = Acks(batch)
    acks.feed(decode(reply(999) + reply(40 + n - 1)))  # another batch's, a stray one: no end
    assert not acks.done
    acks.feed(decode(reply(40 + n)))
    assert acks.done and acks.error(OPS) is None


def test_refused_message_names_its_op() -> None:
    batch = encode_batch(OPS, seq=1)
    n = len(batch.op_index)
    acks = Acks(batch)
    acks.feed(decode(reply(4, errno.EEXIST, ext="element exists")))  # a chunk of AddElements
    assert not acks.done
    acks.feed(decode(reply(1 + n, errno.ENOENT)))  # the last message: DeleteChain
    error = acks.error(OPS)
    assert acks.done and error is not None
    assert error.op is OPS[2] and error.errno == errno.EEXIST
    message = str(error)
    assert message.startswith(
        "nf_tables refused op #2 `add element ip t m { 10.0.0.0 . tcp . 80 : accept,"
    )
    assert "File exists (element exists) (and 1 more errors)" in message
    assert message.endswith("; nothing of the batch was committed")
    assert len(describe(OPS[2])) <= 200


def test_whole_batch_refused() -> None:
    batch = encode_batch(OPS[3:], seq=7)
    acks = Acks(batch)
    acks.feed(decode(reply(7, errno.ENOMEM)))  # BATCH_BEGIN's seq: the batch as a whole
    error = acks.error(OPS[3:])
    assert acks.done and error is not None and error.op is None
    assert str(error) == (
        "nf_tables refused the whole batch of 1 ops: Cannot allocate memory; nothing was committed"
    )


def test_lost_replies_mean_refused() -> None:
    batch = encode_batch(OPS, seq=1)
    acks = Acks(batch)
    acks.lost = True  # overrun: only error replies arrive unasked, so there were errors
    error = acks.error(OPS)
    assert error is not None and error.errno == errno.ENOBUFS and "refused" in str(error)
    acks.feed(decode(reply(2, errno.ENOENT)))  # the first errors are kept when the tail drops
    error = acks.error(OPS)
    assert error is not None and error.op is OPS[0]


def test_describe_names_table_and_chain() -> None:
    assert (
        describe(ir.DeleteChain("pykube-proxy-03", "svc-x"))
        == "delete chain ip pykube-proxy-03 svc-x"
    )
    odd = ir.AddRule("t", "c", ir.Rule((ir.Verdict(K.JUMP, "bad name"),)))
    assert "AddRule(table='t', chain='c'" in describe(odd)
