"""Unit tests of net.proxy.iptables.trace: walking the rule model for one packet."""

from __future__ import annotations

from typing import Any

import pytest

from net.proxy.iptables.rules import RuleSet, build
from net.proxy.iptables.trace import parse_rule, trace
from tests.unit.net.proxy.rule_objects import CONFIG, NODE, ep, eps, state, svc

NODE_IP = CONFIG.node_ips[0]


def rules(services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> RuleSet:
    return build(state(services, slices), CONFIG)


def np_svc(name: str, ip: str, node_port: int, **spec: Any) -> dict[str, Any]:
    return svc(
        name, ip, [{"name": "p", "port": 80, "nodePort": node_port}], type="NodePort", **spec
    )


def test_parse_rule() -> None:
    r = parse_rule(
        '-m comment --comment "a b" -m tcp -p tcp ! -s 10.0.0.0/8 -d 10.96.0.1 '
        "--dport 80 -m statistic --mode random --probability 0.25 -j KUBE-SEP-X"
    )
    assert r.comment == "a b" and r.proto == "tcp" and r.dport == 80
    assert r.src is not None and r.src[1] and str(r.src[0]) == "10.0.0.0/8"
    assert r.dst is not None and not r.dst[1]
    assert r.probability == 0.25 and r.target == "KUBE-SEP-X"


def test_clusterip_balances_over_endpoints() -> None:
    rs = rules(
        [svc("web", "10.96.0.10")],
        [eps("web", [ep("10.244.1.2"), ep("10.244.1.3"), ep("10.244.1.4")])],
    )
    t = trace(rs, src="10.244.5.5", dst="10.96.0.10", port=80)
    assert t.entry == "PREROUTING"
    assert t.outcomes == pytest.approx(
        {
            "dnat 10.244.1.2:8080": 1 / 3,
            "dnat 10.244.1.3:8080": 1 / 3,
            "dnat 10.244.1.4:8080": 1 / 3,
        }
    )
    assert all(not b.masquerade for b in t.branches)  # pod source: no SNAT
    first = t.branches[0]
    assert [h.chain for h in first.hits][:3] == ["PREROUTING", "KUBE-SERVICES", first.hits[2].chain]
    assert first.hits[2].chain.startswith("KUBE-SVC-")
    assert "DNAT to 10.244.1.2:8080" in t.text()


def test_off_cluster_source_is_masqueraded() -> None:
    rs = rules([svc("web", "10.96.0.10")], [eps("web", [ep("10.244.1.2")])])
    t = trace(rs, src=NODE_IP, dst="10.96.0.10", port=80)
    assert t.entry == "OUTPUT"
    (b,) = t.branches
    assert b.outcome == "dnat" and b.masquerade
    assert any(h.chain == "KUBE-POSTROUTING" for h in b.hits)


def test_no_match_for_other_destinations_and_ports() -> None:
    rs = rules([svc("web", "10.96.0.10")], [eps("web", [ep("10.244.1.2")])])
    assert trace(rs, src="10.244.5.5", dst="10.96.0.99", port=80).outcomes == {"no-match": 1.0}
    assert trace(rs, src="10.244.5.5", dst="10.96.0.10", port=81).outcomes == {"no-match": 1.0}
    t = trace(rs, src="10.244.5.5", dst="10.96.0.10", port=80, proto="udp")
    assert t.outcomes == {"no-match": 1.0}
    assert "no Service rule matched" in t.text()


def test_service_without_endpoints_rejects() -> None:
    rs = rules([svc("web", "10.96.0.10")], [])
    t = trace(rs, src="10.244.5.5", dst="10.96.0.10", port=80)
    assert t.outcomes == {"reject": 1.0}
    assert t.branches[0].hits[-1].chain == "KUBE-SERVICES"
    assert t.branches[0].hits[-1].table == "filter"
    # from the node itself too (filter OUTPUT)
    assert trace(rs, src=NODE_IP, dst="10.96.0.10", port=80).outcomes == {"reject": 1.0}


def test_affinity_note() -> None:
    rs = rules(
        [svc("web", "10.96.0.10", sessionAffinity="ClientIP")],
        [eps("web", [ep("10.244.1.2"), ep("10.244.1.3")])],
    )
    t = trace(rs, src="10.244.5.5", dst="10.96.0.10", port=80)
    assert len(t.branches) == 2
    notes = " ".join(t.branches[0].notes)
    assert "session affinity" in notes and "10800s" in notes
    assert "records the client in recent list KUBE-SEP-" in notes


def test_nodeport_external_policy_local_only_local_endpoint() -> None:
    rs = rules(
        [np_svc("web", "10.96.0.10", 30080, externalTrafficPolicy="Local")],
        [eps("web", [ep("10.244.1.2", "node-b"), ep("10.244.2.2", NODE)])],
    )
    t = trace(rs, src="203.0.113.5", dst=NODE_IP, port=30080)
    assert t.outcomes == {"dnat 10.244.2.2:8080": 1.0}
    assert not t.branches[0].masquerade  # client source IP kept
    # the cluster IP still reaches both
    t = trace(rs, src="10.244.5.5", dst="10.96.0.10", port=80)
    assert set(t.outcomes) == {"dnat 10.244.1.2:8080", "dnat 10.244.2.2:8080"}
    # a local client to the NodePort is masqueraded and goes to any endpoint
    t = trace(rs, src=NODE_IP, dst=NODE_IP, port=30080)
    assert set(t.outcomes) == {"dnat 10.244.1.2:8080", "dnat 10.244.2.2:8080"}
    assert all(b.masquerade for b in t.branches)


def test_nodeport_cluster_policy_masquerades() -> None:
    rs = rules([np_svc("web", "10.96.0.10", 30080)], [eps("web", [ep("10.244.1.2")])])
    t = trace(rs, src="203.0.113.5", dst=NODE_IP, port=30080)
    assert t.outcomes == {"dnat 10.244.1.2:8080": 1.0} and t.branches[0].masquerade
    # not a local address: the NodePort does not apply
    assert trace(rs, src="203.0.113.5", dst="192.168.5.99", port=30080).outcomes == {
        "no-match": 1.0
    }


def test_nodeport_local_without_local_endpoints_drops() -> None:
    rs = rules(
        [np_svc("web", "10.96.0.10", 30080, externalTrafficPolicy="Local")],
        [eps("web", [ep("10.244.1.2", "node-b")])],
    )
    t = trace(rs, src="203.0.113.5", dst=NODE_IP, port=30080)
    assert t.outcomes == {"drop": 1.0}


def test_internal_policy_local() -> None:
    rs = rules(
        [svc("web", "10.96.0.10", internalTrafficPolicy="Local")],
        [eps("web", [ep("10.244.1.2", "node-b"), ep("10.244.2.2", NODE)])],
    )
    t = trace(rs, src="10.244.2.9", dst="10.96.0.10", port=80)
    assert t.outcomes == {"dnat 10.244.2.2:8080": 1.0}
    rs = rules(
        [svc("web", "10.96.0.10", internalTrafficPolicy="Local")],
        [eps("web", [ep("10.244.1.2", "node-b")])],
    )
    assert trace(rs, src="10.244.2.9", dst="10.96.0.10", port=80).outcomes == {"drop": 1.0}


def test_external_ip_and_loadbalancer_source_ranges() -> None:
    rs = rules(
        [
            svc(
                "lb",
                "10.96.0.10",
                [{"name": "p", "port": 80, "nodePort": 30080}],
                type="LoadBalancer",
                externalIPs=["192.0.2.9"],
                loadBalancerSourceRanges=["203.0.113.0/24"],
                status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
            )
        ],
        [eps("lb", [ep("10.244.1.2")])],
    )
    t = trace(rs, src="198.18.0.1", dst="192.0.2.9", port=80)
    assert t.outcomes == {"dnat 10.244.1.2:8080": 1.0} and t.branches[0].masquerade
    assert trace(rs, src="203.0.113.5", dst="198.51.100.7", port=80).outcomes == {
        "dnat 10.244.1.2:8080": 1.0
    }
    t = trace(rs, src="198.18.0.1", dst="198.51.100.7", port=80)
    assert t.outcomes == {"drop": 1.0}
    assert t.branches[0].hits[-1].chain == "KUBE-PROXY-FIREWALL"


def test_terminating_fallback_traced() -> None:
    rs = rules(
        [svc("web", "10.96.0.10")],
        [eps("web", [ep("10.244.1.3", ready=False, serving=True, terminating=True)])],
    )
    assert trace(rs, src="10.244.5.5", dst="10.96.0.10", port=80).outcomes == {
        "dnat 10.244.1.3:8080": 1.0
    }


def test_sctp_and_udp() -> None:
    rs = rules(
        [
            svc(
                "m",
                "10.96.0.10",
                [
                    {"name": "d", "port": 53, "protocol": "UDP"},
                    {"name": "s", "port": 9, "protocol": "SCTP"},
                ],
            )
        ],
        [
            eps(
                "m",
                [ep("10.244.1.2")],
                [
                    {"name": "d", "port": 5353, "protocol": "UDP"},
                    {"name": "s", "port": 99, "protocol": "SCTP"},
                ],
            )
        ],
    )
    assert trace(rs, src="10.244.5.5", dst="10.96.0.10", port=53, proto="UDP").outcomes == {
        "dnat 10.244.1.2:5353": 1.0
    }
    assert trace(rs, src="10.244.5.5", dst="10.96.0.10", port=9, proto="sctp").outcomes == {
        "dnat 10.244.1.2:99": 1.0
    }
