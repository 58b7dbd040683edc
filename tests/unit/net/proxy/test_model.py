"""Unit tests of net.proxy.model: raw Service / EndpointSlice dicts into ClusterState."""

from __future__ import annotations

from typing import Any

from net.proxy.model import Endpoint, ProxyConfig, ServicePort, state_from_objects
from tests.unit.net.proxy.rule_objects import ep, eps, svc


def test_clusterip_service_and_endpoints_joined_by_label() -> None:
    st = state_from_objects([svc("web", "10.96.0.10")], [eps("web", [ep("10.244.1.2", "n1")])])
    s = st.services[("ns", "web")]
    assert s.type == "ClusterIP" and s.cluster_ip == "10.96.0.10"
    assert s.ports == (ServicePort("p", "TCP", 80, 0),)
    assert st.endpoints[("ns", "web")] == (
        Endpoint("10.244.1.2", 8080, "p", "TCP", True, True, False, "n1"),
    )


def test_ignored_services() -> None:
    objs: list[Any] = [
        svc("headless", "None"),
        svc("noip", ""),
        svc("v6", "fd00::1"),
        svc("ext", "10.96.0.1", type="ExternalName"),
        svc("noports", "10.96.0.2", ports=[]),
        {"metadata": {"name": 5}},
        {"spec": None},
        "not a dict",
        svc("badport", "10.96.0.3", [{"port": 70000}, {"port": "80"}]),
        svc("badproto", "10.96.0.4", [{"port": 80, "protocol": "ICMP"}]),
    ]
    st = state_from_objects(objs, [])
    assert st.services == {}


def test_dual_stack_picks_ipv4_cluster_ip() -> None:
    st = state_from_objects([svc("d", "fd00::5", clusterIPs=["fd00::5", "10.96.0.5"])], [])
    assert st.services[("ns", "d")].cluster_ip == "10.96.0.5"


def test_nodeport_loadbalancer_fields() -> None:
    obj = svc(
        "lb",
        "10.96.0.7",
        [
            {"name": "http", "port": 80, "nodePort": 30080},
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
        ],
        type="LoadBalancer",
        externalIPs=["192.0.2.9", "bogus", "192.0.2.9"],
        externalTrafficPolicy="Local",
        internalTrafficPolicy="Local",
        healthCheckNodePort=32000,
        loadBalancerSourceRanges=["203.0.113.0/24", " 198.51.100.0/25", "nope"],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "x"}]}},
    )
    s = state_from_objects([obj], []).services[("ns", "lb")]
    assert [(p.name, p.protocol, p.node_port) for p in s.ports] == [
        ("http", "TCP", 30080),
        ("dns", "UDP", 30053),
    ]
    assert s.external_ips == ("192.0.2.9",)
    assert s.lb_ips == ("198.51.100.7",)
    assert s.lb_source_ranges == ("203.0.113.0/24", "198.51.100.0/25")
    assert s.external_local and s.internal_local
    assert s.health_check_node_port == 32000


def test_external_policy_local_needs_external_access() -> None:
    s = state_from_objects([svc("c", "10.96.0.8", externalTrafficPolicy="Local")], [])
    assert not s.services[("ns", "c")].external_local


def test_clusterip_type_ignores_node_ports() -> None:
    s = state_from_objects([svc("c", "10.96.0.8", [{"port": 80, "nodePort": 30000}])], [])
    assert s.services[("ns", "c")].ports[0].node_port == 0


def test_session_affinity_timeout() -> None:
    default = svc("a", "10.96.0.1", sessionAffinity="ClientIP")
    custom = svc(
        "b",
        "10.96.0.2",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    off = svc("c", "10.96.0.3", sessionAffinity="None")
    st = state_from_objects([default, custom, off], [])
    assert st.services[("ns", "a")].affinity_timeout == 10800
    assert st.services[("ns", "b")].affinity_timeout == 60
    assert st.services[("ns", "c")].affinity_timeout is None


def test_endpoint_conditions_defaults_and_dedupe_across_slices() -> None:
    slices = [
        eps(
            "w",
            [ep("10.244.1.3", ready=False, serving=True, terminating=True), ep("10.244.1.2")],
            name="w-1",
        ),
        # the same address again in another slice, this time ready: the ready copy wins
        eps("w", [ep("10.244.1.3"), ep("10.244.1.4", ready=False)], name="w-2"),
        eps("w", [ep("fd00::1")], address_type="IPv6", name="w-3"),
        eps("w", [{"addresses": []}, {"addresses": ["bogus"]}, {}], name="w-4"),
    ]
    st = state_from_objects([svc("w", "10.96.0.1")], slices)
    got = {(e.ip, e.ready, e.serving, e.terminating) for e in st.endpoints[("ns", "w")]}
    assert got == {
        ("10.244.1.2", True, True, False),
        ("10.244.1.3", True, True, False),
        ("10.244.1.4", False, False, False),  # serving defaults to ready
    }
    assert [e.ip for e in st.endpoints[("ns", "w")]] == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]


def test_slices_of_unknown_services_or_without_label_dropped() -> None:
    nolabel = eps("w", [ep("10.244.1.2")])
    nolabel["metadata"]["labels"] = {}
    st = state_from_objects([svc("w", "10.96.0.1")], [nolabel, eps("other", [ep("10.244.1.9")])])
    assert st.endpoints == {}


def test_garbage_never_raises() -> None:
    junk: list[Any] = [
        {
            "metadata": {"labels": {"kubernetes.io/service-name": "w"}},
            "addressType": "IPv4",
            "ports": [{"port": "x"}, None],
            "endpoints": [None],
        },
        {"metadata": None, "addressType": "IPv4"},
        {"addressType": "IPv4", "metadata": {"labels": []}},
    ]
    bad_ports: list[Any] = [{"port": 80}, None]
    st = state_from_objects([svc("w", "10.96.0.1", bad_ports)], junk)
    assert ("ns", "w") not in st.services or st.endpoints.get(("ns", "w"), ()) == ()


def test_multiple_ports_per_slice() -> None:
    ports = [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]
    st = state_from_objects([svc("m", "10.96.0.1")], [eps("m", [ep("10.244.1.2")], ports)])
    assert {(e.port_name, e.protocol, e.port) for e in st.endpoints[("ns", "m")]} == {
        ("http", "TCP", 8080),
        ("dns", "UDP", 5353),
    }


def test_masquerade_mark() -> None:
    assert ProxyConfig("n", ()).masquerade_mark == "0x4000"
    assert ProxyConfig("n", (), masquerade_bit=0).masquerade_mark == "0x1"


def test_load_balancer_ips_in_proxy_ip_mode_get_no_rules() -> None:
    """Upstream IsVIPMode: an ingress with ipMode Proxy is the load balancer's own address,
    which sends traffic to the nodes; capturing it here would hijack traffic meant for it.
    A bad ingress entry costs only itself, not the Service."""
    ingress: list[Any] = [
        {"ip": "198.51.100.7"},
        {"ip": "198.51.100.8", "ipMode": "VIP"},
        {"ip": "198.51.100.9", "ipMode": "Proxy"},
        "garbage",
    ]
    obj = svc(
        "lb",
        "10.96.0.7",
        [{"name": "http", "port": 80, "nodePort": 30080}],
        type="LoadBalancer",
        status={"loadBalancer": {"ingress": ingress}},
    )
    s = state_from_objects([obj], []).services[("ns", "lb")]
    assert s.lb_ips == ("198.51.100.7", "198.51.100.8")
