"""Unit tests of net.proxy.policy, the Service/endpoint decisions every proxy mode shares."""

from __future__ import annotations

import dataclasses

from net.proxy.model import Endpoint, ProxyConfig, Service
from net.proxy.policy import (
    changed_services,
    holds_node_ip,
    nodeport_ips,
    port_endpoints,
    port_policy,
    serving,
)
from tests.unit.net.proxy.rule_objects import NODE, ep, eps, state, svc


def _ep(ip: str, *, ready: bool = True, alive: bool = True, going: bool = False) -> Endpoint:
    return Endpoint(ip, 8080, "p", "TCP", ready=ready, serving=alive, terminating=going)


def test_serving_prefers_ready_then_falls_back_to_serving_terminating() -> None:
    ready, draining = _ep("10.0.0.1"), _ep("10.0.0.2", ready=False, going=True)
    gone = _ep("10.0.0.3", ready=False, alive=False, going=True)
    assert serving([ready, draining, gone]) == [ready]
    assert serving([draining, gone]) == [draining]
    assert serving([gone]) == []


def test_port_policy_of_local_traffic_policies() -> None:
    st = state(
        [svc("web", "10.96.0.10", [{"name": "p", "port": 80, "nodePort": 30080}],
             type="NodePort", externalTrafficPolicy="Local")],
        [eps("web", [ep("10.1.0.1", node="other"), ep("10.1.0.2", node=NODE)])],
    )  # fmt: skip
    (key,) = st.services
    service = st.services[key]
    port = service.ports[0]
    p = port_policy(service, port, st.endpoints[key], NODE)
    assert [e.ip for e in p.cluster] == ["10.1.0.1", "10.1.0.2"]
    assert [e.ip for e in p.local] == ["10.1.0.2"]
    assert p.ext_local and p.uses_local_chain and p.has_external and p.uses_ext_chain
    elsewhere = port_policy(service, port, st.endpoints[key], "n9")
    assert elsewhere.has_any and not elsewhere.has_external and elsewhere.local == []
    assert port_endpoints(port, st.endpoints[key]) == list(st.endpoints[key])


def test_nodeport_ips_follow_upstreams_nodeport_addresses() -> None:
    cfg = ProxyConfig(NODE, ("192.168.5.2", "10.0.0.5", "192.168.5.2"))
    assert nodeport_ips(cfg) is None  # every local address
    only = dataclasses.replace(cfg, nodeport_addresses=("192.168.5.0/24",))
    assert nodeport_ips(only) == ("192.168.5.2",)
    assert nodeport_ips(dataclasses.replace(cfg, nodeport_addresses=("0.0.0.0/0",))) is None
    # no IPv4 CIDR at all: every local address (upstream filters the CIDRs by family first)
    assert nodeport_ips(dataclasses.replace(cfg, nodeport_addresses=("fd00::/64",))) is None
    lo = dataclasses.replace(cfg, nodeport_addresses=("127.0.0.0/8",), localhost_nodeports=True)
    assert nodeport_ips(lo) == ("127.0.0.1",)


def test_holds_node_ip() -> None:
    assert holds_node_ip(("192.168.0.0/16",), ("192.168.1.10",))
    assert not holds_node_ip(("10.0.0.0/8", "fd00::/8"), ("192.168.1.10", "bogus"))


@dataclasses.dataclass(frozen=True)
class _Fragment:
    service: Service
    endpoints: tuple[Endpoint, ...]


def test_changed_services_compares_objects_and_endpoints() -> None:
    before = state([svc("a", "10.96.0.1"), svc("b", "10.96.0.2")], [eps("a", [ep("10.1.0.1")])])
    old = {k: _Fragment(s, before.endpoints.get(k, ())) for k, s in before.services.items()}
    assert changed_services(before, old) == []
    after = state([svc("a", "10.96.0.1")], [eps("a", [ep("10.1.0.9")])])
    assert sorted(changed_services(after, old)) == [("ns", "a"), ("ns", "b")]
    retyped = state([svc("a", "10.96.0.1", type="NodePort")], [eps("a", [ep("10.1.0.1")])])
    assert changed_services(retyped, old) == [("ns", "b"), ("ns", "a")]
