"""Unit tests of net.proxy.iptables.explain: conntrack parsing and the per-Service explanation."""

from __future__ import annotations

import json

from net.proxy.conntrack import parse_conntrack
from net.proxy.iptables.explain import explain
from net.proxy.iptables.rules import RuleSet, build
from net.proxy.model import ClusterState
from tests.unit.net.proxy.rule_objects import CONFIG, NODE, ep, eps, state, svc

CONNTRACK = """\
ipv4     2 tcp      6 86399 ESTABLISHED src=10.244.2.2 dst=10.96.0.10 sport=40000 dport=80 \
src=10.244.1.2 dst=10.244.2.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1
ipv4     2 udp      17 29 src=203.0.113.5 dst=192.168.5.2 sport=5353 dport=30080 [UNREPLIED] \
src=10.244.2.3 dst=203.0.113.5 sport=8080 dport=5353 mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 \
dst=10.0.0.1 sport=2 dport=1 [ASSURED] mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.
garbage
ipv4 2 tcp 6 notanumber ESTABLISHED src=1.1.1.1
"""


def test_parse_conntrack_extended_and_plain() -> None:
    entries = parse_conntrack(CONNTRACK)
    assert len(entries) == 3
    first = entries[0]
    assert (first.proto, first.timeout, first.state) == ("tcp", 86399, "ESTABLISHED")
    assert (first.src, first.dst, first.sport, first.dport) == (
        "10.244.2.2",
        "10.96.0.10",
        40000,
        80,
    )
    assert (first.reply_src, first.reply_sport) == ("10.244.1.2", 8080)
    assert first.flags == ("ASSURED",)
    udp = entries[1]
    assert udp.proto == "udp" and udp.state == "" and udp.flags == ("UNREPLIED",)
    assert entries[2].timeout == 431999  # plain `conntrack -L` output (no ipv4 column)
    assert parse_conntrack("") == []


def _state() -> tuple[ClusterState, RuleSet]:
    st = state(
        [
            svc(
                "web",
                "10.96.0.10",
                [
                    {"name": "p", "port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"name": "d", "port": 80, "nodePort": 30080, "protocol": "UDP"},
                ],
                type="NodePort",
                externalTrafficPolicy="Local",
                sessionAffinity="ClientIP",
                externalIPs=["192.0.2.9"],
            )
        ],
        [
            eps(
                "web",
                [
                    ep("10.244.1.2", "node-b"),
                    ep("10.244.2.3", NODE),
                    ep("10.244.2.4", NODE, ready=False, serving=True, terminating=True),
                ],
                [{"name": "p", "port": 8080}, {"name": "d", "port": 8080, "protocol": "UDP"}],
            )
        ],
    )
    return st, build(st, CONFIG)


def test_explain_ports_frontends_endpoints_and_conntrack() -> None:
    st, rs = _state()
    x = explain(st, rs, ("ns", "web"), parse_conntrack(CONNTRACK))
    assert x.found and x.type == "NodePort" and x.affinity == "ClientIP (10800s)"
    assert x.external_policy == "Local"
    tcp = x.ports[0]
    kinds = {f.kind: f for f in tcp.frontends}
    assert set(kinds) == {"cluster IP", "external IP", "NodePort"}
    assert kinds["cluster IP"].chain is not None and kinds["cluster IP"].chain.startswith(
        "KUBE-SVC-"
    )
    assert kinds["NodePort"].chain is not None and kinds["NodePort"].chain.startswith("KUBE-EXT-")
    by_ip = {e.address: e for e in tcp.endpoints}
    assert by_ip["10.244.2.3:8080"].local and not by_ip["10.244.1.2:8080"].local
    assert len(by_ip["10.244.2.3:8080"].used_by) == 2  # KUBE-SVC and KUBE-SVL
    assert by_ip["10.244.1.2:8080"].used_by == (tcp.chains[0],)
    term = by_ip["10.244.2.4:8080"]
    assert term.terminating and not term.ready and term.chain is None and term.used_by == ()
    # conntrack: the TCP entry to the VIP and the UDP entry to the NodePort
    assert [(c.proto, c.dport) for c in x.conntrack] == [("tcp", 80), ("udp", 30080)]
    text = x.text()
    assert "10.244.2.3:8080" in text and "ESTABLISHED" in text and "NodePort" in text
    assert json.loads(json.dumps(x.to_json()))["ports"][0]["port"] == 80


def test_explain_no_endpoints_and_missing() -> None:
    st = state([svc("empty", "10.96.0.11")], [])
    rs = build(st, CONFIG)
    x = explain(st, rs, ("ns", "empty"))
    assert x.ports[0].frontends[0].verdict == "REJECT (no endpoints)"
    assert x.ports[0].frontends[0].chain is None
    assert "no endpoints" in x.text()
    missing = explain(st, rs, ("ns", "nope"))
    assert not missing.found and "not found" in missing.text()
