"""Unit tests of net.proxy.nftables.trace: walking hand-written nftables tables for one packet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from net.nft import ir
from net.nft.ir import Field as F
from net.proxy.nftables import rules as nft_rules
from net.proxy.nftables.trace import trace_tables
from net.proxy.views import TraceResult
from tests.unit.net.proxy.rule_objects import CONFIG, ep, eps, state, svc

NODE_IP = "192.168.5.2"
POD_CIDR = "10.244.0.0/16"
MASQ = 0x4000
SVC_KEY = (F.IP_DADDR, F.L4PROTO, F.TH_DPORT)
NP_KEY = (F.L4PROTO, F.TH_DPORT)


def rule(*exprs: ir.Expr) -> ir.Rule:
    return ir.Rule(tuple(exprs))


def goto(chain: str) -> ir.Verdict:
    return ir.Verdict(ir.VerdictKind.GOTO, chain)


def jump(chain: str) -> ir.Verdict:
    return ir.Verdict(ir.VerdictKind.JUMP, chain)


RETURN = ir.Verdict(ir.VerdictKind.RETURN)
ACCEPT = ir.Verdict(ir.VerdictKind.ACCEPT)
DROP = ir.Verdict(ir.VerdictKind.DROP)


def base(name: str, type_: ir.ChainType, hook: ir.Hook, priority: int) -> ir.Chain:
    return ir.Chain(name, ir.BaseChain(type_, hook, priority))


ChainRules = tuple[ir.Chain, tuple[ir.Rule, ...]]


def endpoint(chain: str, ip: str, port: int, affinity: str | None = None) -> ChainRules:
    rules = [rule(ir.Cmp(F.IP_SADDR, ip), ir.MarkOr(MASQ))]  # hairpin
    if affinity:
        rules.append(rule(ir.SetUpdate(affinity)))
    rules.append(rule(ir.Cmp(F.L4PROTO, "tcp"), ir.Dnat(ip, port)))
    return ir.Chain(chain), tuple(rules)


def shard(
    name: str,
    chains: Sequence[ChainRules],
    services: Sequence[ir.Element],
    nodeports: Sequence[ir.Element] = (),
    sets: Sequence[tuple[ir.SetDef, tuple[ir.Element, ...]]] = (),
) -> ir.Table:
    """A shard table: nat prerouting/output dispatch through the service-ips and
    service-nodeports verdict maps."""
    dispatch = (
        rule(ir.VMap(SVC_KEY, "service-ips")),
        rule(ir.Cmp(F.FIB_DADDR_TYPE, "local"), ir.VMap(NP_KEY, "service-nodeports")),
    )
    return ir.Table(
        name,
        (
            (base("nat-prerouting", ir.ChainType.NAT, ir.Hook.PREROUTING, -100), dispatch),
            (base("nat-output", ir.ChainType.NAT, ir.Hook.OUTPUT, -100), dispatch),
            *chains,
        ),
        (
            (ir.SetDef("service-ips", SVC_KEY, verdict_map=True), tuple(services)),
            (ir.SetDef("service-nodeports", NP_KEY, verdict_map=True), tuple(nodeports)),
            *sets,
        ),
    )


WEB = "service-WEB-ns-web-tcp-p"
WEB_EXT = "external-WEB-ns-web-tcp-p"
WEB_EPS = ("10.244.1.2", "10.244.1.3", "10.244.2.4")
STICKY = "service-STK-ns-sticky-tcp-p"


def ep_chain(ip: str) -> str:
    return f"endpoint-WEB-ns-web-tcp-p__{ip}-8080"


SHARD_00 = shard(
    "pykube-proxy-00",
    [
        (
            ir.Chain(STICKY),
            (
                rule(ir.Cmp(F.IP_SADDR, POD_CIDR, negate=True), ir.MarkOr(MASQ)),
                rule(ir.InSet((F.IP_SADDR,), "affinity-STK-a"), goto("endpoint-STK-a")),
                rule(ir.InSet((F.IP_SADDR,), "affinity-STK-b"), goto("endpoint-STK-b")),
                rule(ir.Random(2, 0), goto("endpoint-STK-a")),
                rule(goto("endpoint-STK-b")),
            ),
        ),
        endpoint("endpoint-STK-a", "10.244.3.1", 9000, affinity="affinity-STK-a"),
        endpoint("endpoint-STK-b", "10.244.3.2", 9000, affinity="affinity-STK-b"),
    ],
    [ir.Element(("10.96.0.30", "tcp", 80), goto(STICKY))],
    sets=[
        (ir.SetDef("affinity-STK-a", (F.IP_SADDR,), timeout=10800), ()),
        (ir.SetDef("affinity-STK-b", (F.IP_SADDR,), timeout=10800), ()),
    ],
)

SHARD_01 = shard(
    "pykube-proxy-01",
    [
        (
            ir.Chain(WEB),
            (
                rule(ir.Cmp(F.IP_SADDR, POD_CIDR, negate=True), ir.MarkOr(MASQ)),
                rule(ir.Random(3, 0), goto(ep_chain(WEB_EPS[0]))),
                rule(ir.Random(2, 0), goto(ep_chain(WEB_EPS[1]))),
                rule(goto(ep_chain(WEB_EPS[2]))),
            ),
        ),
        (ir.Chain(WEB_EXT), (rule(ir.MarkOr(MASQ)), rule(goto(WEB)))),
        *(endpoint(ep_chain(ip), ip, 8080) for ip in WEB_EPS),
    ],
    [ir.Element(("10.96.0.10", "tcp", 80), goto(WEB))],
    [ir.Element(("tcp", 30080), goto(WEB_EXT))],
)

SHARED = ir.Table(
    "pykube-proxy",
    (
        (
            base("nat-postrouting", ir.ChainType.NAT, ir.Hook.POSTROUTING, 100),
            (rule(jump("masquerading")),),
        ),
        (
            ir.Chain("masquerading"),
            (
                rule(ir.MarkTest(MASQ, is_set=False), RETURN),
                rule(ir.MarkXor(MASQ)),
                rule(ir.Masquerade()),
            ),
        ),
        *(
            (
                base(f"filter-{h.value}", ir.ChainType.FILTER, h, -110),
                (
                    rule(ir.Cmp(F.CT_STATE, "new"), jump("nodeport-endpoints-check")),
                    rule(ir.Cmp(F.CT_STATE, "new"), jump("service-endpoints-check")),
                ),
            )
            for h in (ir.Hook.INPUT, ir.Hook.FORWARD, ir.Hook.OUTPUT)
        ),
        (
            ir.Chain("service-endpoints-check"),
            (rule(ir.InSet(SVC_KEY, "no-endpoint-services"), ir.Reject()),),
        ),
        (
            ir.Chain("nodeport-endpoints-check"),
            (
                rule(
                    ir.Cmp(F.FIB_DADDR_TYPE, "local"),
                    ir.InSet(NP_KEY, "no-endpoint-nodeports"),
                    ir.Reject(),
                ),
            ),
        ),
    ),
    (
        (
            ir.SetDef("no-endpoint-services", SVC_KEY),
            (ir.Element(("10.96.0.20", "tcp", 80)),),
        ),
        (ir.SetDef("no-endpoint-nodeports", NP_KEY), (ir.Element(("tcp", 30020)),)),
    ),
)

TABLES = (SHARD_00, SHARD_01, SHARED)


def run(
    src: str,
    dst: str,
    port: int,
    proto: str = "tcp",
    hook: str | None = None,
    tables: Sequence[ir.Table] = TABLES,
) -> TraceResult:
    return trace_tables(
        tables, src=src, dst=dst, port=port, proto=proto, local_addresses=(NODE_IP,), hook=hook
    )


def chains(t: TraceResult, branch: int = 0) -> list[str]:
    return [h.chain for h in t.branches[branch].hits]


def test_clusterip_balances_over_three_endpoints_in_the_second_shard() -> None:
    t = run("10.244.5.5", "10.96.0.10", 80)
    assert t.entry == "PREROUTING"
    assert t.outcomes == pytest.approx({f"dnat {ip}:8080": 1 / 3 for ip in WEB_EPS})
    assert [b.endpoint for b in t.branches] == [f"{ip}:8080" for ip in WEB_EPS]
    assert all(not b.masquerade for b in t.branches)  # a pod source: no SNAT
    assert chains(t) == ["nat-prerouting", WEB, ep_chain(WEB_EPS[0])]
    first = t.branches[0].hits
    assert {h.table for h in first} == {"pykube-proxy-01"}
    assert first[0].rule == (
        "ip daddr . meta l4proto . th dport vmap @service-ips"
        f"  [10.96.0.10 . tcp . 80 : goto {WEB}]"
    )
    assert first[1].rule == f"numgen random mod 3 == 0 goto {ep_chain(WEB_EPS[0])}"
    assert first[2].rule == "meta l4proto tcp dnat to 10.244.1.2:8080"
    # the third endpoint is reached by the last rule, after both random rules failed
    assert chains(t, 2) == ["nat-prerouting", WEB, ep_chain(WEB_EPS[2])]
    assert t.branches[2].hits[1].rule == f"goto {ep_chain(WEB_EPS[2])}"
    text = t.text()
    assert "(enters nat PREROUTING)" in text
    assert "branch 2 (p=0.3333): DNAT to 10.244.1.3:8080" in text


def test_node_source_enters_by_output_and_is_masqueraded() -> None:
    t = run(NODE_IP, "10.96.0.10", 80)
    assert t.entry == "OUTPUT"
    assert len(t.branches) == 3 and all(b.masquerade for b in t.branches)
    hits = t.branches[0].hits
    assert [h.chain for h in hits] == [
        "nat-output",
        WEB,
        WEB,
        ep_chain(WEB_EPS[0]),
        "nat-postrouting",
        "masquerading",
        "masquerading",
    ]
    assert hits[1].rule == f"ip saddr != {POD_CIDR} meta mark set meta mark or 0x4000"
    assert hits[-2].rule == "meta mark set meta mark xor 0x4000"
    assert hits[-1].rule == "masquerade fully-random"
    assert "DNAT to 10.244.1.2:8080 (masquerade)" in t.text()


def test_explicit_hook_overrides_the_guess() -> None:
    t = run("10.244.5.5", "10.96.0.10", 80, hook="output")
    assert t.entry == "OUTPUT" and chains(t)[0] == "nat-output"
    with pytest.raises(ValueError, match="input"):
        run("10.244.5.5", "10.96.0.10", 80, hook="input")


def test_hairpin_endpoint_is_masqueraded() -> None:
    t = run(WEB_EPS[1], "10.96.0.10", 80)
    by_endpoint = {b.endpoint: b.masquerade for b in t.branches}
    assert by_endpoint == {f"{ip}:8080": ip == WEB_EPS[1] for ip in WEB_EPS}


def test_nodeport_via_fib_local_and_vmap() -> None:
    t = run("192.168.9.9", NODE_IP, 30080)
    assert t.outcomes == pytest.approx({f"dnat {ip}:8080": 1 / 3 for ip in WEB_EPS})
    assert all(b.masquerade for b in t.branches)
    hits = t.branches[0].hits
    assert hits[0].rule.startswith("fib daddr type local meta l4proto . th dport vmap")
    assert hits[0].rule.endswith(f"[tcp . 30080 : goto {WEB_EXT}]")
    assert [h.chain for h in hits][:4] == ["nat-prerouting", WEB_EXT, WEB_EXT, WEB]
    # the node port on an address that is not the node's: nothing
    assert run("192.168.9.9", "192.168.5.3", 30080).outcomes == {"no-match": 1.0}
    # localhost is local too
    t = run("127.0.0.1", "127.0.0.1", 30080)
    assert t.entry == "OUTPUT" and set(t.outcomes) == {f"dnat {ip}:8080" for ip in WEB_EPS}


def test_session_affinity_is_noted_and_recorded() -> None:
    t = run("10.244.5.5", "10.96.0.30", 80)
    assert t.outcomes == pytest.approx({"dnat 10.244.3.1:9000": 0.5, "dnat 10.244.3.2:9000": 0.5})
    notes = t.branches[0].notes
    assert any("session affinity" in n and "@affinity-STK-a" in n for n in notes)
    assert "records the client in affinity set @affinity-STK-a" in notes
    assert "records the client in affinity set @affinity-STK-b" in t.branches[1].notes
    assert "note: session affinity" in t.text()


def test_service_without_endpoints_is_rejected_in_the_shared_table() -> None:
    for src in ("10.244.5.5", NODE_IP):
        t = run(src, "10.96.0.20", 80)
        assert t.outcomes == {"reject": 1.0}
        (b,) = t.branches
        last = b.hits[-1]
        assert (last.table, last.chain) == ("pykube-proxy", "service-endpoints-check")
        assert last.rule == "ip daddr . meta l4proto . th dport @no-endpoint-services reject"
        assert "REJECT (connection refused)" in t.text()
    # a pod's packet is routed (forward), the node's own meets filter output
    assert chains(run("10.244.5.5", "10.96.0.20", 80))[0] == "filter-forward"
    assert chains(run(NODE_IP, "10.96.0.20", 80))[0] == "filter-output"
    # another port of that address is not in the set
    assert run("10.244.5.5", "10.96.0.20", 81).outcomes == {"no-match": 1.0}


def test_nodeport_without_endpoints_is_rejected_on_input() -> None:
    t = run("192.168.9.9", NODE_IP, 30020)
    assert t.outcomes == {"reject": 1.0}
    assert chains(t) == ["filter-input", "nodeport-endpoints-check"]


def test_a_packet_that_matches_nothing() -> None:
    for dst, port in (("10.96.0.99", 80), ("10.96.0.10", 81)):
        t = run("10.244.5.5", dst, port)
        assert t.outcomes == {"no-match": 1.0}
        assert t.branches[0].hits == ()
    t = run("10.244.5.5", "10.96.0.10", 80, "udp")
    assert t.outcomes == {"no-match": 1.0}
    assert "no Service rule matched" in t.text()
    empty = run("10.244.5.5", "10.96.0.10", 80, tables=())
    assert empty.outcomes == {"no-match": 1.0}
    assert any("no base chain" in n for n in empty.notes)


def test_jump_return_goto_accept_and_drop() -> None:
    t1 = ir.Table(
        "t1",
        (
            (
                base("pre", ir.ChainType.FILTER, ir.Hook.PREROUTING, 0),
                (
                    rule(jump("a")),  # a returns: on with the next rule
                    rule(jump("b")),  # b goes to c, whose end returns past b
                    rule(ir.Cmp(F.TH_DPORT, 22), ACCEPT),  # t2's chain still sees it
                    rule(ir.Cmp(F.TH_DPORT, "1000-2000"), DROP),
                ),
            ),
            (ir.Chain("a"), (rule(RETURN), rule(DROP))),
            (ir.Chain("b"), (rule(goto("c")), rule(DROP))),
            (ir.Chain("c"), (rule(ir.MarkOr(0x1)),)),
        ),
    )
    t2 = ir.Table(
        "t2",
        (
            (
                base("pre", ir.ChainType.FILTER, ir.Hook.PREROUTING, 0),
                (rule(ir.MarkTest(0x1, is_set=True), ir.Cmp(F.TH_DPORT, 22), DROP),),
            ),
        ),
    )
    assert run("10.1.1.1", "10.2.2.2", 80, tables=[t1, t2]).outcomes == {"no-match": 1.0}
    assert run("10.1.1.1", "10.2.2.2", 1500, tables=[t1, t2]).outcomes == {"drop": 1.0}
    t = run("10.1.1.1", "10.2.2.2", 22, tables=[t1, t2])
    assert t.outcomes == {"drop": 1.0}
    assert [(h.table, h.chain) for h in t.branches[0].hits] == [  # `jump a` changed nothing
        ("t1", "pre"),
        ("t1", "b"),
        ("t1", "c"),
        ("t1", "pre"),
        ("t2", "pre"),
    ]
    assert "DROP" in t.text()


def nat_table(name: str, priority: int, to: str) -> ir.Table:
    dnat = rule(ir.Cmp(F.IP_DADDR, "10.96.0.0/12"), ir.Dnat(to, 8080))
    return ir.Table(name, ((base("pre", ir.ChainType.NAT, ir.Hook.PREROUTING, priority), (dnat,)),))


def test_base_chains_run_in_priority_order_and_nat_stops_after_dnat() -> None:
    late = nat_table("late", 0, "10.0.0.1")
    early = nat_table("early", -5, "10.0.0.2")
    tie = nat_table("tie", -5, "10.0.0.3")
    t = run("10.244.5.5", "10.96.0.10", 80, tables=[late, early, tie])
    assert t.outcomes == {"dnat 10.0.0.2:8080": 1.0}  # lowest priority first, then table order
    assert [h.table for h in t.branches[0].hits] == ["early"]
    # a filter chain after DNAT sees the new destination
    guard = ir.Table(
        "guard",
        (
            (
                base("fwd", ir.ChainType.FILTER, ir.Hook.FORWARD, 0),
                (rule(ir.Cmp(F.IP_DADDR, "10.0.0.2"), ir.Cmp(F.TH_DPORT, 8080), ir.Reject()),),
            ),
        ),
    )
    assert run("10.244.5.5", "10.96.0.10", 80, tables=[early, guard]).outcomes == {"reject": 1.0}


def test_negations_sets_and_missing_objects() -> None:
    t = ir.Table(
        "t",
        (
            (
                base("pre", ir.ChainType.NAT, ir.Hook.PREROUTING, -100),
                (
                    rule(ir.InSet((F.IP_SADDR,), "allowed", negate=True), DROP),
                    rule(ir.Cmp(F.L4PROTO, "udp", negate=True), ir.InSet((F.IP_DADDR,), "none")),
                    rule(ir.Cmp(F.CT_STATE, "established,related"), DROP),
                    rule(ir.Cmp(F.FIB_SADDR_TYPE, "local", negate=True), jump("missing")),
                    rule(ir.Dnat("10.0.0.9")),
                ),
            ),
        ),
        ((ir.SetDef("allowed", (F.IP_SADDR,)), (ir.Element(("10.1.0.0/16",)),)),),
    )
    assert run("10.2.0.1", "10.96.0.1", 80, tables=[t]).outcomes == {"drop": 1.0}
    r = run("10.1.2.3", "10.96.0.1", 80, tables=[t])
    assert r.outcomes == {"dnat 10.0.0.9:80": 1.0}  # no port: the packet's
    notes = r.branches[0].notes
    assert any("set @none does not exist" in n for n in notes)
    assert any("chain missing does not exist" in n for n in notes)


def test_values_nft_would_refuse_match_nothing() -> None:
    t = ir.Table(
        "t",
        (
            (
                base("pre", ir.ChainType.NAT, ir.Hook.PREROUTING, -100),
                (
                    rule(ir.InSet(SVC_KEY, "odd"), DROP),
                    rule(ir.Cmp(F.IP_DADDR, "not-an-address"), DROP),
                    rule(ir.Cmp(F.TH_DPORT, "eighty"), DROP),
                    rule(ir.Dnat("10.0.0.300", 80)),
                ),
            ),
        ),
        ((ir.SetDef("odd", SVC_KEY), (ir.Element(("10.96.0.1/40", "tcp", 80)),)),),
    )
    r = run("10.1.2.3", "10.96.0.1", 80, tables=[t])
    assert r.outcomes == {"no-match": 1.0}
    assert any("not an IPv4 address" in n for n in r.branches[0].notes)


# ---- tables built by net.proxy.nftables.rules from model data ---------------------------------

MODEL_NODE_IP = CONFIG.node_ips[0]


def built(services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> tuple[ir.Table, ...]:
    return nft_rules.build(state(services, slices), CONFIG).tables()


def trace_built(tables: Sequence[ir.Table], src: str, dst: str, port: int) -> TraceResult:
    return trace_tables(tables, src=src, dst=dst, port=port, local_addresses=CONFIG.node_ips)


def np_svc(name: str, ip: str, node_port: int, **spec: Any) -> dict[str, Any]:
    ports = [{"name": "p", "port": 80, "nodePort": node_port}]
    return svc(name, ip, ports, type="NodePort", **spec)


def test_built_clusterip_balances_in_its_shard() -> None:
    ips = ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    tables = built([svc("web", "10.96.0.10")], [eps("web", [ep(ip) for ip in ips])])
    shard = nft_rules.shard_table(nft_rules.shard_of(("ns", "web")))
    t = trace_built(tables, "10.244.5.5", "10.96.0.10", 80)
    assert t.outcomes == pytest.approx({f"dnat {ip}:8080": 1 / 3 for ip in ips})
    assert all(not b.masquerade for b in t.branches)
    for b in t.branches:
        assert {h.table for h in b.hits} == {shard}
        assert b.hits[-1].chain.startswith(nft_rules.ENDPOINT_PREFIX)
        assert b.hits[-1].rule == f"meta l4proto tcp dnat to {b.endpoint}"
    # from the node itself: masqueraded in the shared table's postrouting
    t = trace_built(tables, MODEL_NODE_IP, "10.96.0.10", 80)
    assert t.entry == "OUTPUT" and all(b.masquerade for b in t.branches)
    last = t.branches[0].hits[-1]
    assert (last.table, last.chain) == (nft_rules.SHARED_TABLE, nft_rules.MASQUERADING)


def test_built_nodeport_reaches_its_endpoint_masqueraded() -> None:
    tables = built([np_svc("np", "10.96.0.11", 30080)], [eps("np", [ep("10.244.2.2")])])
    t = trace_built(tables, "203.0.113.9", MODEL_NODE_IP, 30080)
    assert t.outcomes == {"dnat 10.244.2.2:8080": 1.0}
    (b,) = t.branches
    assert b.masquerade
    chains = [h.chain for h in b.hits]
    assert any(c.startswith(nft_rules.EXTERNAL_PREFIX) for c in chains)
    # the node port on another address is not ours, the cluster IP still is
    assert trace_built(tables, "203.0.113.9", "192.168.5.99", 30080).outcomes == {"no-match": 1.0}
    assert set(trace_built(tables, "10.244.5.5", "10.96.0.11", 80).outcomes) == {
        "dnat 10.244.2.2:8080"
    }


def test_built_service_without_endpoints_rejects() -> None:
    tables = built([np_svc("empty", "10.96.0.12", 30090)], [])
    for src, dst, port, chain in (
        ("10.244.5.5", "10.96.0.12", 80, nft_rules.SERVICE_CHECK),
        (MODEL_NODE_IP, "10.96.0.12", 80, nft_rules.SERVICE_CHECK),
        ("203.0.113.9", MODEL_NODE_IP, 30090, nft_rules.NODEPORT_CHECK),
    ):
        t = trace_built(tables, src, dst, port)
        assert t.outcomes == {"reject": 1.0}, (src, dst, port)
        last = t.branches[0].hits[-1]
        assert (last.table, last.chain) == (nft_rules.SHARED_TABLE, chain)


def test_built_local_policy_without_local_endpoints_drops_external_traffic() -> None:
    tables = built(
        [np_svc("loc", "10.96.0.13", 30100, externalTrafficPolicy="Local")],
        [eps("loc", [ep("10.244.3.3", node="other-node")])],
    )
    assert trace_built(tables, "203.0.113.9", MODEL_NODE_IP, 30100).outcomes == {"drop": 1.0}
    # the cluster IP still balances to the (remote) endpoint
    assert trace_built(tables, "10.244.5.5", "10.96.0.13", 80).outcomes == {
        "dnat 10.244.3.3:8080": 1.0
    }


def test_built_affinity_is_noted() -> None:
    tables = built(
        [
            svc(
                "sticky",
                "10.96.0.14",
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
            )
        ],
        [eps("sticky", [ep("10.244.4.1"), ep("10.244.4.2")])],
    )
    t = trace_built(tables, "10.244.5.5", "10.96.0.14", 80)
    assert t.outcomes == pytest.approx({"dnat 10.244.4.1:8080": 0.5, "dnat 10.244.4.2:8080": 0.5})
    for b in t.branches:
        assert any("session affinity: a client seen in the last 60s" in n for n in b.notes)
        assert any(n.startswith("records the client in affinity set @affinity-") for n in b.notes)
