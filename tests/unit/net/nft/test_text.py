"""net/nft/text.py: the nft syntax of every IR construct, whole tables and batch ops,
and what it refuses."""

from __future__ import annotations

import pytest

from net.nft import ir
from net.nft.text import op_text, ops_text, rule_text, table_text

from .tables import SVC_KEY, every_construct

F = ir.Field
K = ir.VerdictKind


@pytest.mark.parametrize(
    "exprs,text",
    [
        (
            (
                ir.Cmp(F.IP_DADDR, "10.96.0.1"),
                ir.Cmp(F.L4PROTO, "tcp"),
                ir.Cmp(F.TH_DPORT, 80),
                ir.Cmp(F.IP_SADDR, "10.88.0.0/16", negate=True),
                ir.Verdict(K.JUMP, "mark-for-masquerade"),
            ),
            "ip daddr 10.96.0.1 meta l4proto tcp th dport 80 ip saddr != 10.88.0.0/16"
            " jump mark-for-masquerade",
        ),
        (
            (ir.Random(3, 0), ir.Verdict(K.GOTO, "endpoint-x")),
            "numgen random mod 3 == 0 goto endpoint-x",
        ),
        ((ir.MarkOr(0x4000),), "meta mark set meta mark or 0x4000"),
        ((ir.MarkXor(0x4000),), "meta mark set meta mark xor 0x4000"),
        ((ir.MarkTest(0x4000, False), ir.Verdict(K.RETURN)), "meta mark & 0x4000 == 0 return"),
        ((ir.MarkTest(0x4000, True), ir.Verdict(K.ACCEPT)), "meta mark & 0x4000 != 0 accept"),
        ((ir.SetUpdate("aff-x"),), "update @aff-x { ip saddr }"),
        (
            (ir.Cmp(F.L4PROTO, "tcp"), ir.Dnat("10.1.0.5", 8080)),
            "meta l4proto tcp dnat to 10.1.0.5:8080",
        ),
        ((ir.Dnat("10.1.0.5"),), "dnat to 10.1.0.5"),
        ((ir.Masquerade(),), "masquerade fully-random"),
        ((ir.Masquerade(fully_random=False),), "masquerade"),
        ((ir.Reject(),), "reject"),
        (
            (ir.VMap(SVC_KEY, "service-ips"),),
            "ip daddr . meta l4proto . th dport vmap @service-ips",
        ),
        (
            (ir.InSet(SVC_KEY, "no-ep"), ir.Reject()),
            "ip daddr . meta l4proto . th dport @no-ep reject",
        ),
        ((ir.InSet((F.IP_SADDR,), "a", negate=True), ir.Verdict(K.DROP)), "ip saddr != @a drop"),
        ((ir.Cmp(F.FIB_DADDR_TYPE, "local"),), "fib daddr type local"),
        ((ir.Cmp(F.FIB_SADDR_TYPE, "local", negate=True),), "fib saddr type != local"),
        ((ir.Cmp(F.CT_STATE, "established,related"),), "ct state established,related"),
        ((ir.Cmp(F.CT_STATE, "new", negate=True),), "ct state != new"),
        # nft 1.0.6 reads `ct state != a,b` as "not exactly a|b"; "none of them" is spelled so:
        (
            (ir.Cmp(F.CT_STATE, "established, related", negate=True),),
            "ct state & (established | related) == 0",
        ),
    ],
)
def test_rule_text(exprs: tuple[ir.Expr, ...], text: str) -> None:
    assert rule_text(ir.Rule(exprs)) == text


def test_comment_is_quoted_and_quotes_are_refused() -> None:
    rule = ir.Rule((ir.Verdict(K.ACCEPT),), comment="ns/svc:http")
    assert rule_text(rule) == 'accept comment "ns/svc:http"'
    for bad in ('say "hi"', "back\\slash", "two\nlines", "x" * 129):
        with pytest.raises(ValueError, match="comment"):
            rule_text(ir.Rule((ir.Verdict(K.ACCEPT),), comment=bad))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1abc",
        "-x",
        "has space",
        'q"uote',
        "semi;colon",
        "a:b",
        "x" * 256,
        "ip",
        "accept",
        "map",
    ],
)
def test_names_nft_cannot_read_unquoted_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid nft"):
        rule_text(ir.Rule((ir.Verdict(K.JUMP, bad),)))
    with pytest.raises(ValueError, match="invalid nft"):
        op_text(ir.AddTable(bad))


@pytest.mark.parametrize(
    "good", ["service-KGB2OZAJ-ns/web/tcp/p", "endpoint-X-ns/a/tcp/p__10.1.0.1/80", ".x", "input"]
)
def test_names_nft_reads_unquoted(good: str) -> None:
    """Checked with nft 1.0.6: "/" and "." inside names, words that are no keywords."""
    assert rule_text(ir.Rule((ir.Verdict(K.GOTO, good),))) == f"goto {good}"
    assert op_text(ir.AddTable(good)) == f"add table ip {good}"


def test_verdict_chain_rules() -> None:
    with pytest.raises(ValueError, match="needs a chain"):
        rule_text(ir.Rule((ir.Verdict(K.GOTO),)))
    with pytest.raises(ValueError, match="takes no chain"):
        rule_text(ir.Rule((ir.Verdict(K.ACCEPT, "x"),)))
    with pytest.raises(ValueError, match="at least one"):
        rule_text(ir.Rule(()))


def test_table_text_declares_sets_then_chains() -> None:
    text = table_text(every_construct())
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "table ip pkh1-all {" and lines[-1] == "}"
    assert text.index("map service-ips {") < text.index("chain nat-prerouting {")
    assert "type ipv4_addr . inet_proto . inet_service : verdict;" in lines
    assert 'comment "cluster IPs";' in lines
    assert (
        "elements = { 10.96.0.1 . tcp . 80 : goto svc-a, 10.96.0.2 . udp . 53 : jump svc-a, "
        "10.96.0.3 . sctp . 9 : accept, 10.96.0.4 . 6 . 443 : drop }"
    ) in lines
    assert "type ipv4_addr;" in lines and "elements = { 10.96.0.9, 10.96.0.10 }" in lines
    i = lines.index("set affinity-a {")
    assert lines[i + 1 : i + 5] == [
        "type ipv4_addr;",
        "flags dynamic,timeout;",
        "timeout 10800s;",
        'comment "ClientIP affinity";',
    ]
    i = lines.index("chain nat-prerouting {")
    assert lines[i + 1 : i + 4] == [
        'comment "dispatch to services";',
        "type nat hook prerouting priority -100; policy accept;",
        "ip daddr . meta l4proto . th dport vmap @service-ips",
    ]
    assert "type filter hook forward priority 0; policy accept;" in lines


def test_table_text_checks_elements_against_their_set() -> None:
    key = (F.IP_DADDR,)
    no_verdict = ir.Table(
        "t", (), ((ir.SetDef("m", key, verdict_map=True), (ir.Element(("10.0.0.1",)),)),)
    )
    with pytest.raises(ValueError, match="needs a verdict"):
        table_text(no_verdict)
    verdict = ir.Element(("10.0.0.1",), ir.Verdict(K.ACCEPT))
    with pytest.raises(ValueError, match="cannot have a verdict"):
        table_text(ir.Table("t", (), ((ir.SetDef("s", key), (verdict,)),)))
    for bad in ("10.0.0.0/8", "a b", ""):
        with pytest.raises(ValueError, match="invalid element"):
            table_text(ir.Table("t", (), ((ir.SetDef("s", key), (ir.Element((bad,)),)),)))
    with pytest.raises(ValueError, match="only for plain sets"):
        table_text(ir.Table("t", (), ((ir.SetDef("m", key, verdict_map=True, timeout=5), ()),)))


def test_ops_text_one_command_per_op() -> None:
    vmap = ir.SetDef("service-ips", SVC_KEY, verdict_map=True)
    pre = ir.Chain("pre", ir.BaseChain(ir.ChainType.NAT, ir.Hook.PREROUTING, -100))
    goto = ir.Verdict(K.GOTO, "svc-a")
    ops: list[ir.Op] = [
        ir.AddTable("t"),
        ir.FlushTable("t"),
        ir.AddChain("t", pre),
        ir.AddChain("t", ir.Chain("svc-a", comment="a")),
        ir.AddSet("t", vmap),
        ir.AddSet("t", ir.SetDef("aff", (F.IP_SADDR,), timeout=60)),
        ir.FlushSet("t", "service-ips"),
        ir.FlushSet("t", "aff"),
        ir.AddElements("t", "service-ips", (ir.Element(("10.96.0.1", "tcp", 80), goto),)),
        ir.DeleteElements("t", "service-ips", (ir.Element(("10.96.0.1", "tcp", 80), goto),)),
        ir.AddRule("t", "svc-a", ir.Rule((ir.Dnat("10.1.0.1", 80),))),
        ir.FlushChain("t", "svc-a"),
        ir.DeleteChain("t", "svc-a"),
        ir.DeleteSet("t", "aff"),
        ir.DeleteTable("t"),
    ]
    assert ops_text(ops).splitlines() == [
        "add table ip t",
        "flush table ip t",
        "add chain ip t pre { type nat hook prerouting priority -100; policy accept; }",
        'add chain ip t svc-a { comment "a"; }',
        "add map ip t service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }",
        "add set ip t aff { type ipv4_addr; flags dynamic,timeout; timeout 60s; }",
        "flush map ip t service-ips",
        "flush set ip t aff",
        "add element ip t service-ips { 10.96.0.1 . tcp . 80 : goto svc-a }",
        "delete element ip t service-ips { 10.96.0.1 . tcp . 80 }",
        "add rule ip t svc-a dnat to 10.1.0.1:80",
        "flush chain ip t svc-a",
        "delete chain ip t svc-a",
        "delete set ip t aff",
        "delete table ip t",
    ]
    # a map the batch does not add: nft must be told it is a map
    assert ops_text([ir.FlushSet("t", "m")]) == "flush set ip t m\n"
    assert ops_text([ir.FlushSet("t", "m")], maps={("t", "m")}) == "flush map ip t m\n"
    with pytest.raises(ValueError, match="no elements"):
        ops_text([ir.AddElements("t", "s", ())])
