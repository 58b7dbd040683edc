"""IR fixtures for the nft tests: a table using every IR construct, and the ops loading it.
Shared by the unit tests and tests/integration/test_nft_netlink.py."""

from __future__ import annotations

from net.nft import ir

F = ir.Field
K = ir.VerdictKind
SVC_KEY = (F.IP_DADDR, F.L4PROTO, F.TH_DPORT)


def every_construct(name: str = "pkh1-all") -> ir.Table:
    """Every Field, Cmp (CIDR, negated), MarkTest, InSet (negated), Random, MarkOr/MarkXor,
    SetUpdate with a timeout set, every verdict, a 3-field VMap, Dnat with and without port,
    Masquerade both ways, Reject, comments on rules, chains and sets."""
    nat_pre = ir.BaseChain(ir.ChainType.NAT, ir.Hook.PREROUTING, -100)
    nat_out = ir.BaseChain(ir.ChainType.NAT, ir.Hook.OUTPUT, -100)
    nat_post = ir.BaseChain(ir.ChainType.NAT, ir.Hook.POSTROUTING, 100)
    fwd = ir.BaseChain(ir.ChainType.FILTER, ir.Hook.FORWARD, 0)
    inp = ir.BaseChain(ir.ChainType.FILTER, ir.Hook.INPUT, 0)

    def verdict(kind: ir.VerdictKind, chain: str | None = None) -> ir.Verdict:
        return ir.Verdict(kind, chain)

    chains: tuple[tuple[ir.Chain, tuple[ir.Rule, ...]], ...] = (
        (
            ir.Chain("nat-prerouting", nat_pre, comment="dispatch to services"),
            (
                ir.Rule((ir.VMap(SVC_KEY, "service-ips"),)),
                ir.Rule(
                    (ir.Cmp(F.FIB_DADDR_TYPE, "local"), verdict(K.JUMP, "nodeports")),
                    comment="node ports",
                ),
            ),
        ),
        (ir.Chain("nat-output", nat_out), (ir.Rule((ir.VMap(SVC_KEY, "service-ips"),)),)),
        (
            ir.Chain("nat-postrouting", nat_post),
            (
                ir.Rule((ir.MarkTest(0x4000, False), verdict(K.RETURN))),
                ir.Rule((ir.MarkXor(0x4000),)),
                ir.Rule((ir.Cmp(F.FIB_SADDR_TYPE, "local", negate=True), ir.Masquerade())),
                ir.Rule((ir.Masquerade(fully_random=False),)),
            ),
        ),
        (
            ir.Chain("filter-forward", fwd),
            (
                ir.Rule((ir.Cmp(F.CT_STATE, "invalid"), verdict(K.DROP))),
                ir.Rule((ir.Cmp(F.CT_STATE, "established,related"), verdict(K.ACCEPT))),
                ir.Rule(
                    (
                        ir.Cmp(F.CT_STATE, "established,related", negate=True),
                        ir.MarkTest(0x4000, True),
                        verdict(K.ACCEPT),
                    )
                ),
                ir.Rule((ir.Cmp(F.CT_STATE, "new", negate=True), verdict(K.ACCEPT))),
                ir.Rule((ir.InSet(SVC_KEY, "no-endpoints"), ir.Reject()), comment="no endpoints"),
                ir.Rule((ir.InSet((F.IP_DADDR,), "addrs", negate=True), verdict(K.DROP))),
            ),
        ),
        (
            ir.Chain("filter-input", inp),
            (ir.Rule((ir.InSet(SVC_KEY, "no-endpoints"), ir.Reject())),),
        ),
        (
            ir.Chain("nodeports"),
            (
                ir.Rule(
                    (ir.Cmp(F.L4PROTO, "udp"), ir.Cmp(F.TH_DPORT, 30080), verdict(K.GOTO, "svc-a"))
                ),
            ),
        ),
        (
            ir.Chain("mark-for-masquerade", comment="masquerade later"),
            (ir.Rule((ir.MarkOr(0x4000),)),),
        ),
        (
            ir.Chain("svc-a"),
            (
                ir.Rule(
                    (
                        ir.Cmp(F.IP_DADDR, "10.96.0.1"),
                        ir.Cmp(F.L4PROTO, "tcp"),
                        ir.Cmp(F.TH_DPORT, 80),
                        ir.Cmp(F.IP_SADDR, "10.88.0.0/16", negate=True),
                        verdict(K.JUMP, "mark-for-masquerade"),
                    )
                ),
                ir.Rule(
                    (
                        ir.Cmp(F.IP_SADDR, "10.88.16.0/20"),
                        ir.Cmp(F.IP_DADDR, "10.96.0.2", negate=True),
                        ir.Cmp(F.IP_DADDR, "10.0.0.0/8"),
                        ir.Cmp(F.IP_SADDR, "10.1.2.3/32", negate=True),
                        verdict(K.ACCEPT),
                    )
                ),
                ir.Rule((ir.InSet((F.IP_SADDR,), "affinity-a"), verdict(K.GOTO, "ep-a"))),
                ir.Rule((ir.Random(2, 0), verdict(K.GOTO, "ep-a")), comment="endpoint a"),
                ir.Rule((verdict(K.GOTO, "ep-b"),)),
            ),
        ),
        (
            ir.Chain("ep-a"),
            (
                ir.Rule((ir.Cmp(F.IP_SADDR, "10.1.0.5"), verdict(K.JUMP, "mark-for-masquerade"))),
                ir.Rule(
                    (
                        ir.SetUpdate("affinity-a"),
                        ir.Cmp(F.L4PROTO, "tcp"),
                        ir.Dnat("10.1.0.5", 8080),
                    )
                ),
            ),
        ),
        (ir.Chain("ep-b"), (ir.Rule((ir.Dnat("10.1.0.6"),)),)),
    )
    sets: tuple[tuple[ir.SetDef, tuple[ir.Element, ...]], ...] = (
        (
            ir.SetDef("service-ips", SVC_KEY, verdict_map=True, comment="cluster IPs"),
            (
                ir.Element(("10.96.0.1", "tcp", 80), verdict(K.GOTO, "svc-a")),
                ir.Element(("10.96.0.2", "udp", 53), verdict(K.JUMP, "svc-a")),
                ir.Element(("10.96.0.3", "sctp", 9), verdict(K.ACCEPT)),
                ir.Element(("10.96.0.4", 6, 443), verdict(K.DROP)),
            ),
        ),
        (ir.SetDef("no-endpoints", SVC_KEY), (ir.Element(("10.96.0.9", "tcp", 9)),)),
        (
            ir.SetDef("addrs", (F.IP_DADDR,)),
            (ir.Element(("10.96.0.9",)), ir.Element(("10.96.0.10",))),
        ),
        (ir.SetDef("affinity-a", (F.IP_SADDR,), timeout=10800, comment="ClientIP affinity"), ()),
    )
    return ir.Table(name, chains, sets)


def table_ops(t: ir.Table) -> list[ir.Op]:
    """Ops loading a table from scratch: table, chains, sets, elements, then rules."""
    ops: list[ir.Op] = [ir.AddTable(t.name)]
    ops += [ir.AddChain(t.name, chain) for chain, _rules in t.chains]
    ops += [ir.AddSet(t.name, s) for s, _elements in t.sets]
    ops += [ir.AddElements(t.name, s.name, elements) for s, elements in t.sets if elements]
    ops += [ir.AddRule(t.name, chain.name, r) for chain, rules in t.chains for r in rules]
    return ops
