"""Unit tests of net.proxy.nftables.explain: a Service's frontends, chains and endpoints read from
hand-written nftables tables (the fixtures of test_nft_trace)."""

from __future__ import annotations

from net.proxy.conntrack import parse_conntrack
from net.proxy.nftables import rules as nft_rules
from net.proxy.nftables.explain import explain_tables
from tests.unit.net.proxy.nftables.test_trace import (
    NODE_IP,
    STICKY,
    TABLES,
    WEB,
    WEB_EPS,
    WEB_EXT,
    ep_chain,
)
from tests.unit.net.proxy.rule_objects import CONFIG, ep, eps, state, svc

STATE = state(
    [
        svc("web", "10.96.0.10", [{"name": "p", "port": 80, "nodePort": 30080}], type="NodePort"),
        svc("empty", "10.96.0.20"),
        svc(
            "sticky",
            "10.96.0.30",
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}},
        ),
    ],
    [
        eps("web", [ep(ip, node="node-a" if ip == WEB_EPS[0] else "node-b") for ip in WEB_EPS]),
        eps("web", [ep("10.244.9.9", ready=False)], name="web-def"),
    ],
)

CONNTRACK = """\
tcp      6 86399 ESTABLISHED src=10.244.2.2 dst=10.96.0.10 sport=40000 dport=80 \
src=10.244.1.2 dst=10.244.2.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1
tcp      6 86399 ESTABLISHED src=10.244.2.2 dst=10.96.0.11 sport=40000 dport=80 \
src=10.244.1.2 dst=10.244.2.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1
"""


def test_nodeport_service_frontends_chains_and_endpoints() -> None:
    x = explain_tables(
        STATE,
        TABLES,
        ("ns", "web"),
        node_name="node-a",
        node_ips=(NODE_IP,),
        conntrack=parse_conntrack(CONNTRACK),
    )
    assert x.found and x.type == "NodePort" and x.cluster_ip == "10.96.0.10"
    (p,) = x.ports
    assert [(f.kind, f.address, f.chain, f.verdict) for f in p.frontends] == [
        ("cluster IP", "10.96.0.10:80", WEB, ""),
        ("NodePort", "*:30080", WEB_EXT, ""),
    ]
    assert p.chains == (WEB, WEB_EXT, *(ep_chain(ip) for ip in WEB_EPS))
    views = {e.address: e for e in p.endpoints}
    assert set(views) == {f"{ip}:8080" for ip in WEB_EPS} | {"10.244.9.9:8080"}
    first = views[f"{WEB_EPS[0]}:8080"]
    assert first.local and first.chain == ep_chain(WEB_EPS[0]) and first.used_by == (WEB,)
    assert not views[f"{WEB_EPS[1]}:8080"].local
    not_ready = views["10.244.9.9:8080"]
    assert not not_ready.ready and not_ready.chain is None and not_ready.used_by == ()
    assert [c.dst for c in x.conntrack] == ["10.96.0.10"]
    text = x.text()
    assert f"cluster IP       10.96.0.10:80          -> {WEB}" in text
    assert "conntrack entries: 1" in text


def test_service_without_endpoints_shows_the_reject() -> None:
    x = explain_tables(STATE, TABLES, ("ns", "empty"), node_ips=(NODE_IP,))
    (p,) = x.ports
    (f,) = p.frontends
    assert (f.chain, f.verdict) == (None, "REJECT (no endpoints)")
    assert p.chains == () and p.endpoints == ()
    assert "[REJECT (no endpoints)]" in x.text()


def test_affinity_service_and_unknown_service() -> None:
    x = explain_tables(STATE, TABLES, ("ns", "sticky"))
    assert x.affinity == "ClientIP (10800s)"
    (p,) = x.ports
    assert p.frontends[0].chain == STICKY
    assert p.chains == (STICKY, "endpoint-STK-a", "endpoint-STK-b")
    missing = explain_tables(STATE, TABLES, ("ns", "nope"))
    assert not missing.found and "not found" in missing.text()
    # no tables at all: found, but nothing programmed
    bare = explain_tables(STATE, (), ("ns", "web"))
    assert all(f.chain is None for f in bare.ports[0].frontends)
    assert all(e.chain is None for e in bare.ports[0].endpoints)


def test_built_tables_name_the_service_chains() -> None:
    built_state = state(
        [
            svc(
                "np", "10.96.0.11", [{"name": "p", "port": 80, "nodePort": 30080}], type="NodePort"
            ),
            svc("other", "10.96.0.12"),
        ],
        [
            eps("np", [ep("10.244.2.2", node=CONFIG.node_name), ep("10.244.2.3")]),
            eps("other", [ep("10.244.7.7")]),
        ],
    )
    tables = nft_rules.build(built_state, CONFIG).tables()
    key = ("ns", "np")
    x = explain_tables(
        built_state, tables, key, node_name=CONFIG.node_name, node_ips=CONFIG.node_ips
    )
    service = built_state.services[key]
    (port,) = service.ports
    base = nft_rules.port_base(service, port)
    (p,) = x.ports
    assert [(f.kind, f.chain, f.verdict) for f in p.frontends] == [
        ("cluster IP", nft_rules.SERVICE_PREFIX + base, ""),
        ("NodePort", nft_rules.EXTERNAL_PREFIX + base, ""),
    ]
    endpoints = built_state.endpoints[key]
    sep = {e.address: nft_rules.endpoint_chain(service, port, e) for e in endpoints}
    assert set(p.chains) == {
        nft_rules.SERVICE_PREFIX + base,
        nft_rules.EXTERNAL_PREFIX + base,
        *sep.values(),
    }  # not the other Service's, nor the shared mark-for-masquerade
    for e in p.endpoints:
        assert e.chain == sep[e.address] and e.used_by == (nft_rules.SERVICE_PREFIX + base,)
    assert [e.local for e in p.endpoints] == [True, False]
    empty = nft_rules.build(state([svc("np", "10.96.0.11")], []), CONFIG).tables()
    (f,) = explain_tables(state([svc("np", "10.96.0.11")], []), empty, key).ports[0].frontends
    assert (f.chain, f.verdict) == (None, "REJECT (no endpoints)")
