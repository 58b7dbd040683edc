"""net/nft/encode.py (templates, caches) against tests/unit/net/nft/reference_encode.py (the plain
encoder it replaced): the same bytes and op indexes for every construct and for proxy batches."""

from __future__ import annotations

import random

import pytest

from net.nft import encode, ir
from net.proxy.model import ClusterState, Endpoint, Service, ServiceKey
from net.proxy.nftables import rules as nr
from net.proxy.nftables.batch import full_batch, partial_batch
from tests.unit.net.proxy.nftables.test_rules import CASES, NP_CONFIG, _random_service
from tests.unit.net.proxy.rule_objects import state

from . import reference_encode as reference
from .tables import SVC_KEY, every_construct, table_ops

F = ir.Field
K = ir.VerdictKind


def same(ops: list[ir.Op], sets: dict[tuple[str, str], ir.SetDef] | None = None) -> None:
    """Both encoders give the same batch; twice over (the caches are warm the second time)."""
    want = reference.encode_batch(ops, 7, sets)
    for _ in range(2):
        got = encode.encode_batch(ops, 7, sets)
        assert got.op_index == want.op_index
        assert got.data == want.data


def test_every_construct_and_every_op() -> None:
    t = every_construct()
    ops: list[ir.Op] = [
        *table_ops(t),
        ir.FlushTable(t.name),
        ir.FlushChain(t.name, "ep-b"),
        ir.DeleteChain(t.name, "ep-b"),
        ir.FlushSet(t.name, "addrs"),
        ir.DeleteElements(t.name, "addrs", (ir.Element(("10.96.0.9",)),)),
        ir.DeleteElements(t.name, "service-ips", (ir.Element(("10.96.0.1", "tcp", 80)),)),
        ir.DeleteSet(t.name, "addrs"),
        ir.DeleteTable(t.name),
    ]
    same(ops)


def test_spellings_off_the_fast_paths() -> None:
    """Values the templates do not take (padded, numeric, string ports, CIDRs) and every
    verdict, in rules and in element keys."""
    rules = [
        (ir.Cmp(F.IP_SADDR, " 10.1.0.5 "), ir.Cmp(F.TH_DPORT, "8080")),
        (ir.Cmp(F.IP_DADDR, "10.1.0.0/24", negate=True), ir.Cmp(F.L4PROTO, 17)),
        (ir.Cmp(F.L4PROTO, "sctp", negate=True), ir.Cmp(F.TH_DPORT, 0, negate=True)),
        (ir.Cmp(F.TH_DPORT, 65535), ir.Random(1, 0), ir.Random(7, 6)),
        (ir.Dnat("10.1.0.5", 65535),),
        (ir.Dnat("10.1.0.5", None),),
        *((ir.Verdict(k),) for k in (K.ACCEPT, K.DROP, K.RETURN)),
        (ir.Verdict(K.JUMP, "c"),),
        (ir.Verdict(K.GOTO, "c"),),
    ]
    s = ir.SetDef("m", SVC_KEY, verdict_map=True)
    elements = (
        ir.Element(("10.96.0.1", "tcp", 80), ir.Verdict(K.GOTO, "c")),
        ir.Element((" 10.96.0.2", 6, "443"), ir.Verdict(K.JUMP, "c")),
        ir.Element(("10.96.0.3", "udp", 53), ir.Verdict(K.ACCEPT)),
        ir.Element(("10.96.0.4", 132, 0), ir.Verdict(K.DROP)),
    )
    ops: list[ir.Op] = [
        ir.AddTable("t"),
        ir.AddChain("t", ir.Chain("c", comment="a chain")),
        ir.AddSet("t", s),
        ir.AddSet("t", ir.SetDef("p", (F.TH_DPORT,))),
        ir.AddElements("t", "m", elements),
        ir.AddElements("t", "p", (ir.Element((80,)), ir.Element(("8080",)))),
        *(ir.AddRule("t", "c", ir.Rule(r, comment=f"r{i}")) for i, r in enumerate(rules)),
    ]
    same(ops)


@pytest.mark.parametrize(
    "op",
    [
        ir.AddRule("t", "c", ir.Rule((ir.Cmp(F.IP_SADDR, "10.1.0.256"),))),
        ir.AddRule("t", "c", ir.Rule((ir.Cmp(F.TH_DPORT, 65536),))),
        ir.AddRule("t", "c", ir.Rule((ir.Cmp(F.L4PROTO, "tcpx"),))),
        ir.AddRule("t", "c", ir.Rule((ir.Random(2, 2),))),
        ir.AddRule("t", "c", ir.Rule((ir.Dnat("10.0.0.1", 65536),))),
        ir.AddRule("t", "c", ir.Rule((ir.Verdict(K.GOTO, "bad name"),))),
        ir.AddRule("t", "c", ir.Rule((ir.Verdict(K.GOTO),))),
        ir.AddRule("t", "bad name", ir.Rule((ir.Verdict(K.ACCEPT),))),
        ir.AddRule("t", "c", ir.Rule(())),
        ir.AddElements("t", "m", (ir.Element(("10.0.0.1", "tcp", 70000), ir.Verdict(K.DROP)),)),
        ir.AddElements("t", "m", (ir.Element(("10.0.0.1", "tcp", 80)),)),
        ir.AddChain("bad table", ir.Chain("c")),
        ir.AddChain("", ir.Chain("c")),
    ],
)
def test_the_same_ops_are_refused(op: ir.Op) -> None:
    sets = {("t", "m"): ir.SetDef("m", SVC_KEY, verdict_map=True)}
    with pytest.raises(ValueError) as want:
        reference.encode_batch([ir.AddTable("t"), op], 1, sets)
    with pytest.raises(encode.EncodeError) as got:
        encode.encode_batch([ir.AddTable("t"), op], 1, sets)
    assert got.value.index == 1 and str(got.value) == str(want.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_proxy_full_batches(case: str) -> None:
    services, slices, config = CASES[case]
    same(full_batch(nr.build(state(services, slices), config)))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_proxy_batches(seed: int) -> None:
    rng = random.Random(seed)
    services: dict[ServiceKey, Service] = {}
    endpoints: dict[ServiceKey, tuple[Endpoint, ...]] = {}
    for i in range(1, 60):
        s, e = _random_service(rng, i)
        services[s.key], endpoints[s.key] = s, e
    applied = nr.build(ClusterState(dict(services), dict(endpoints)), NP_CONFIG)
    same(full_batch(applied))
    sets = {(t.name, s.name): s for t in applied.tables() for s, _e in t.sets}
    for i in range(1, 20):
        s, e = _random_service(rng, i)
        services[s.key], endpoints[s.key] = s, e
    desired = nr.build(ClusterState(services, endpoints), NP_CONFIG, previous=applied)
    same(partial_batch(desired, applied).ops, sets)


@pytest.mark.parametrize("table", ["", "bad table", "table"])
def test_a_bad_first_table_name_is_refused(table: str) -> None:
    with pytest.raises(encode.EncodeError, match="table name"):
        encode.encode_batch([ir.AddTable(table)])
