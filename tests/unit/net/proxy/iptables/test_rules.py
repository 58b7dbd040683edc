"""Unit tests of net.proxy.iptables.rules: the iptables rule model built from plain Service data."""

from __future__ import annotations

import dataclasses
from typing import Any

from net.proxy.iptables.rules import (
    BUILTIN_JUMPS,
    RuleSet,
    build,
    chain_hash,
    probability,
)
from net.proxy.model import ProxyConfig
from tests.unit.net.proxy.rule_objects import CONFIG, NODE, ep, eps, state, svc

H80 = chain_hash("ns/web:ptcp")


def nat(rs: RuleSet, chain: str) -> tuple[str, ...]:
    return tuple(rs.tables["nat"][chain])


def filt(rs: RuleSet, chain: str) -> tuple[str, ...]:
    return tuple(rs.tables["filter"][chain])


def web(**spec: Any) -> RuleSet:
    return build(
        state([svc("web", "10.96.0.10", **spec)], [eps("web", [ep("10.244.1.2")])]), CONFIG
    )


def test_chain_names_match_upstream_hashes() -> None:
    # Values from upstream's proxier_test.go (ns1/svc1:p80 tcp, endpoint 10.180.0.1:80).
    assert chain_hash("ns1/svc1:p80tcp") == "XPGD46QRK7WJZT7O"
    assert chain_hash("ns1/svc1:p80tcp10.180.0.1:80") == "SXIVWICOYRO3J4NJ"


def test_probability_format() -> None:
    assert probability(2) == "0.5000000000"
    assert probability(3) == "0.3333333333"


def test_clusterip_with_cluster_cidr_masquerades_off_cluster_sources() -> None:
    rs = web()
    svc_chain = f"KUBE-SVC-{H80}"
    assert nat(rs, "KUBE-SERVICES")[0] == (
        f'-m comment --comment "ns/web:p cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 '
        f"-j {svc_chain}"
    )
    assert nat(rs, svc_chain)[0].endswith("--dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ")
    sep = "KUBE-SEP-" + chain_hash("ns/web:ptcp10.244.1.2:8080")
    assert nat(rs, svc_chain)[1] == f'-m comment --comment "ns/web:p -> 10.244.1.2:8080" -j {sep}'
    # hairpin: the endpoint talking to itself through the VIP is masqueraded
    assert nat(rs, sep) == (
        "-m comment --comment ns/web:p -s 10.244.1.2 -j KUBE-MARK-MASQ",
        "-m comment --comment ns/web:p -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080",
    )
    assert rs.owners[svc_chain] == ("ns", "web") and rs.owners["KUBE-SERVICES"] is None
    assert filt(rs, "KUBE-SERVICES") == ()


def test_masquerade_all_and_no_cluster_cidr() -> None:
    st = state([svc("web", "10.96.0.10")], [eps("web", [ep("10.244.1.2")])])
    rs = build(st, dataclasses.replace(CONFIG, masquerade_all=True))
    assert nat(rs, f"KUBE-SVC-{H80}")[0].endswith("--dport 80 -j KUBE-MARK-MASQ")
    rs = build(st, dataclasses.replace(CONFIG, cluster_cidr=None))
    assert not any("KUBE-MARK-MASQ" in line for line in nat(rs, f"KUBE-SVC-{H80}"))


def test_random_balancing_probabilities() -> None:
    st = state([svc("web", "10.96.0.10")], [eps("web", [ep(f"10.244.1.{i}") for i in (2, 3, 4)])])
    lines = nat(build(st, CONFIG), f"KUBE-SVC-{H80}")[1:]
    assert "--probability 0.3333333333" in lines[0]
    assert "--probability 0.5000000000" in lines[1]
    assert "statistic" not in lines[2]


def test_no_endpoints_rejects_in_filter_and_has_no_nat_chain() -> None:
    rs = build(state([svc("web", "10.96.0.10")], []), CONFIG)
    assert filt(rs, "KUBE-SERVICES") == (
        '-m comment --comment "ns/web:p has no endpoints" -m tcp -p tcp -d 10.96.0.10 '
        "--dport 80 -j REJECT",
    )
    assert not any(c.startswith("KUBE-SVC-") for c in rs.tables["nat"])
    assert all("10.96.0.10" not in line for line in nat(rs, "KUBE-SERVICES"))


def test_not_ready_endpoints_are_not_used() -> None:
    st = state([svc("web", "10.96.0.10")], [eps("web", [ep("10.244.1.2", ready=False)])])
    rs = build(st, CONFIG)
    assert "REJECT" in filt(rs, "KUBE-SERVICES")[0]


def test_serving_terminating_fallback_only_without_ready_endpoints() -> None:
    term = ep("10.244.1.3", ready=False, serving=True, terminating=True)
    rs = build(state([svc("web", "10.96.0.10")], [eps("web", [term])]), CONFIG)
    assert "10.244.1.3:8080" in nat(rs, f"KUBE-SVC-{H80}")[1]
    rs = build(state([svc("web", "10.96.0.10")], [eps("web", [term, ep("10.244.1.2")])]), CONFIG)
    assert [line for line in nat(rs, f"KUBE-SVC-{H80}") if "10.244.1.3" in line] == []
    # not serving while terminating: never used
    gone = ep("10.244.1.4", ready=False, serving=False, terminating=True)
    rs = build(state([svc("web", "10.96.0.10")], [eps("web", [gone])]), CONFIG)
    assert "REJECT" in filt(rs, "KUBE-SERVICES")[0]


def test_session_affinity_recent_rules() -> None:
    rs = web(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    sep = "KUBE-SEP-" + chain_hash("ns/web:ptcp10.244.1.2:8080")
    lines = nat(rs, f"KUBE-SVC-{H80}")
    assert lines[1] == (
        f'-m comment --comment "ns/web:p -> 10.244.1.2:8080" -m recent --name {sep} '
        f"--rcheck --seconds 60 --reap -j {sep}"
    )
    assert f"-m recent --name {sep} --set -m tcp -p tcp -j DNAT" in nat(rs, sep)[1]


def test_nodeport_all_local_addresses() -> None:
    rs = web(type="NodePort", ports=[{"name": "p", "port": 80, "nodePort": 30080}])
    ext = f"KUBE-EXT-{H80}"
    assert nat(rs, "KUBE-NODEPORTS") == (
        f"-m comment --comment ns/web:p -m tcp -p tcp --dport 30080 -j {ext}",
    )
    assert nat(rs, ext) == (
        '-m comment --comment "masquerade traffic for ns/web:p external destinations" '
        "-j KUBE-MARK-MASQ",
        f"-j KUBE-SVC-{H80}",
    )
    assert nat(rs, "KUBE-SERVICES")[-1] == (
        '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule '
        'in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS'
    )


def test_localhost_nodeports_as_upstream() -> None:
    """Upstream's --iptables-localhost-nodeports: NodePorts answer on 127/8 (the daemon sets
    route_localnet=1), and KUBE-FIREWALL drops 127/8 traffic that did not start here."""
    cfg = dataclasses.replace(CONFIG, localhost_nodeports=True)
    rs = build(state([svc("web", "10.96.0.10")], []), cfg)
    assert nat(rs, "KUBE-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert filt(rs, "KUBE-FIREWALL") == (
        '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
        "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    )
    assert ("filter", "INPUT", "-j KUBE-FIREWALL") in rs.jumps
    assert ("filter", "OUTPUT", "-j KUBE-FIREWALL") in rs.jumps
    # --nodeport-addresses naming 127/8: lo's 127.0.0.1 takes NodePorts, as upstream's GetNodeIPs
    lo = dataclasses.replace(cfg, nodeport_addresses=("127.0.0.0/8", "192.168.5.0/24"))
    tails = [x for x in nat(build(state([], []), lo), "KUBE-SERVICES") if "KUBE-NODEPORTS" in x]
    assert [x.split('chain" ')[1] for x in tails] == [
        "-d 192.168.5.2 -j KUBE-NODEPORTS",
        "-d 127.0.0.1 -j KUBE-NODEPORTS",
    ]
    # patched RuleSets keep the jumps; without the option the kubelet's chain is not touched
    again = build(state([svc("web", "10.96.0.11")], []), cfg, previous=rs)
    assert again.jumps == rs.jumps
    assert "KUBE-FIREWALL" not in web().tables["filter"]
    assert not any("KUBE-FIREWALL" in r for _t, _c, r in web().jumps)


def test_nodeport_addresses_select_node_ips() -> None:
    cfg = ProxyConfig(NODE, ("192.168.5.2", "10.0.0.5"), nodeport_addresses=("192.168.5.0/24",))
    rs = build(state([svc("web", "10.96.0.10")], []), cfg)
    assert [line.split("-d ")[1] for line in nat(rs, "KUBE-SERVICES")] == [
        "192.168.5.2 -j KUBE-NODEPORTS"
    ]
    cfg = dataclasses.replace(cfg, nodeport_addresses=("0.0.0.0/0",))
    assert "--dst-type LOCAL" in nat(build(state([], []), cfg), "KUBE-SERVICES")[-1]


def test_nodeport_without_endpoints_rejects_on_local_addresses() -> None:
    st = state(
        [svc("web", "10.96.0.10", [{"name": "p", "port": 80, "nodePort": 30080}], type="NodePort")],
        [],
    )
    rs = build(st, CONFIG)
    assert filt(rs, "KUBE-EXTERNAL-SERVICES") == (
        '-m comment --comment "ns/web:p has no endpoints" -m addrtype --dst-type LOCAL '
        "-m tcp -p tcp --dport 30080 -j REJECT",
    )
    assert nat(rs, "KUBE-NODEPORTS") == ()


def test_external_ips_and_loadbalancer() -> None:
    rs = web(
        type="LoadBalancer",
        ports=[{"name": "p", "port": 80, "nodePort": 30080}],
        externalIPs=["192.0.2.9"],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
    )
    ext = f"KUBE-EXT-{H80}"
    services = nat(rs, "KUBE-SERVICES")
    assert (
        f'-m comment --comment "ns/web:p external IP" -m tcp -p tcp -d 192.0.2.9 --dport 80 '
        f"-j {ext}" in services
    )
    assert (
        f'-m comment --comment "ns/web:p loadbalancer IP" -m tcp -p tcp -d 198.51.100.7 '
        f"--dport 80 -j {ext}" in services
    )


def test_loadbalancer_source_ranges_firewall() -> None:
    rs = web(
        type="LoadBalancer",
        ports=[{"name": "p", "port": 80, "nodePort": 30080}],
        loadBalancerSourceRanges=["203.0.113.0/24"],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
    )
    fw = f"KUBE-FW-{H80}"
    assert any(
        line.endswith(f"-j {fw}") and "198.51.100.7" in line for line in nat(rs, "KUBE-SERVICES")
    )
    assert nat(rs, fw) == (
        f'-m comment --comment "ns/web:p loadbalancer IP" -s 203.0.113.0/24 -j KUBE-EXT-{H80}',
        '-m comment --comment "other traffic to ns/web:p will be dropped by KUBE-PROXY-FIREWALL"',
    )
    assert filt(rs, "KUBE-PROXY-FIREWALL") == (
        f'-m comment --comment "ns/web:p traffic not accepted by {fw}" -m tcp -p tcp '
        "-d 198.51.100.7 --dport 80 -j DROP",
    )


def test_source_range_holding_the_node_ip_lets_the_node_reach_its_lb_ip() -> None:
    """Upstream allowFromNode: a VIP-like LB IP is often local, so the node's own requests to
    it arrive from the LB IP itself; when a source range holds the node IP they are allowed."""
    rs = web(
        type="LoadBalancer",
        ports=[{"name": "p", "port": 80, "nodePort": 30080}],
        loadBalancerSourceRanges=["192.168.5.0/24"],  # CONFIG's node IP is 192.168.5.2
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
    )
    assert nat(rs, f"KUBE-FW-{H80}")[:2] == (
        f'-m comment --comment "ns/web:p loadbalancer IP" -s 192.168.5.0/24 -j KUBE-EXT-{H80}',
        f'-m comment --comment "ns/web:p loadbalancer IP" -s 198.51.100.7 -j KUBE-EXT-{H80}',
    )


def _local_state(local: bool, **spec: Any) -> RuleSet:
    endpoints = [ep("10.244.1.2", "node-b")]
    if local:
        endpoints.append(ep("10.244.2.2", NODE))
    st = state(
        [
            svc(
                "web",
                "10.96.0.10",
                [{"name": "p", "port": 80, "nodePort": 30080}],
                type="NodePort",
                **spec,
            )
        ],
        [eps("web", endpoints)],
    )
    return build(st, CONFIG)


def test_external_traffic_policy_local() -> None:
    rs = _local_state(True, externalTrafficPolicy="Local")
    ext, svl = f"KUBE-EXT-{H80}", f"KUBE-SVL-{H80}"
    assert nat(rs, ext) == (
        '-m comment --comment "pod traffic for ns/web:p external destinations" '
        f"-s 10.244.0.0/16 -j KUBE-SVC-{H80}",
        '-m comment --comment "masquerade LOCAL traffic for ns/web:p external destinations" '
        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        '-m comment --comment "route LOCAL traffic for ns/web:p external destinations" '
        f"-m addrtype --src-type LOCAL -j KUBE-SVC-{H80}",
        f"-j {svl}",
    )
    assert [line.split("-> ")[1].split('"')[0] for line in nat(rs, svl)] == ["10.244.2.2:8080"]
    # both endpoints still serve the cluster IP
    assert len(nat(rs, f"KUBE-SVC-{H80}")) == 3


def test_external_traffic_policy_local_without_local_endpoints_drops() -> None:
    rs = _local_state(False, externalTrafficPolicy="Local")
    assert filt(rs, "KUBE-EXTERNAL-SERVICES") == (
        '-m comment --comment "ns/web:p has no local endpoints" -m addrtype --dst-type LOCAL '
        "-m tcp -p tcp --dport 30080 -j DROP",
    )
    assert f"KUBE-SVL-{H80}" not in rs.tables["nat"]
    assert nat(rs, f"KUBE-EXT-{H80}")[-1].endswith(f"-j KUBE-SVC-{H80}")  # LOCAL sources only


def test_internal_traffic_policy_local() -> None:
    rs = _local_state(True, internalTrafficPolicy="Local")
    svl = f"KUBE-SVL-{H80}"
    assert any(
        line.endswith(f"-j {svl}") and "cluster IP" in line for line in nat(rs, "KUBE-SERVICES")
    )
    assert nat(rs, svl)[0].endswith("! -s 10.244.0.0/16 -j KUBE-MARK-MASQ")
    rs = _local_state(False, internalTrafficPolicy="Local")
    assert '"ns/web:p has no local endpoints"' in filt(rs, "KUBE-SERVICES")[0]
    assert filt(rs, "KUBE-SERVICES")[0].endswith("-j DROP")


def test_udp_and_sctp() -> None:
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "s", "port": 9, "protocol": "SCTP"},
    ]
    slice_ports = [
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "s", "port": 99, "protocol": "SCTP"},
    ]
    rs = build(
        state([svc("m", "10.96.0.10", ports)], [eps("m", [ep("10.244.1.2")], slice_ports)]), CONFIG
    )
    lines = nat(rs, "KUBE-SERVICES")
    assert any("-m udp -p udp -d 10.96.0.10 --dport 53" in line for line in lines)
    assert any("-m sctp -p sctp -d 10.96.0.10 --dport 9" in line for line in lines)
    sep = "KUBE-SEP-" + chain_hash("ns/m:dnsudp10.244.1.2:5353")
    assert nat(rs, sep)[1].endswith("-m udp -p udp -j DNAT --to-destination 10.244.1.2:5353")


def test_health_check_node_port_accepted() -> None:
    rs = _local_state(True, externalTrafficPolicy="Local", healthCheckNodePort=32000)
    assert filt(rs, "KUBE-NODEPORTS") == (
        '-m comment --comment "ns/web:p health check node port" -m tcp -p tcp --dport 32000 '
        "-j ACCEPT",
    )


def test_static_chains_and_builtin_jumps() -> None:
    rs = build(state([], []), CONFIG)
    assert nat(rs, "KUBE-MARK-MASQ") == ("-j MARK --or-mark 0x4000",)
    assert nat(rs, "KUBE-POSTROUTING")[0] == "-m mark ! --mark 0x4000/0x4000 -j RETURN"
    assert "RELATED,ESTABLISHED" in filt(rs, "KUBE-FORWARD")[-1]
    assert (
        "nat",
        "PREROUTING",
        '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    ) in BUILTIN_JUMPS
    assert (
        "nat",
        "POSTROUTING",
        '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ) in rs.jumps


def _tables(rs: RuleSet) -> dict[str, dict[str, tuple[str, ...]]]:
    return {t: {c: tuple(v) for c, v in chains.items()} for t, chains in rs.tables.items()}


def test_incremental_build_equals_full_build() -> None:
    services = [svc(f"s{i}", f"10.96.0.{i}") for i in range(1, 30)]
    slices = [eps(f"s{i}", [ep(f"10.244.1.{i}")]) for i in range(1, 30)]
    before = build(state(services, slices), CONFIG)
    # change s5's endpoints, remove s7, add s40
    slices2 = [s for s in slices if s["metadata"]["name"] not in ("s5-abc", "s7-abc")]
    slices2.append(eps("s5", [ep("10.244.9.9"), ep("10.244.9.8")]))
    services2 = [s for s in services if s["metadata"]["name"] != "s7"]
    services2.append(svc("s40", "10.96.1.40"))
    st2 = state(services2, slices2)
    full = build(st2, CONFIG)
    compared = build(st2, CONFIG, previous=before)
    hinted = build(
        st2, CONFIG, previous=before, changed=[("ns", "s5"), ("ns", "s7"), ("ns", "s40")]
    )
    assert _tables(compared) == _tables(full)
    assert _tables(hinted) == _tables(full)
    assert dict(hinted.owners) == dict(full.owners)
    assert hinted.fragments[("ns", "s1")] is before.fragments[("ns", "s1")]
    assert compared.order == full.order


def test_config_change_rebuilds_everything() -> None:
    st = state([svc("web", "10.96.0.10")], [eps("web", [ep("10.244.1.2")])])
    before = build(st, CONFIG)
    after = build(st, dataclasses.replace(CONFIG, masquerade_all=True), previous=before)
    assert after.fragments[("ns", "web")] is not before.fragments[("ns", "web")]
    assert nat(after, f"KUBE-SVC-{H80}")[0].endswith("--dport 80 -j KUBE-MARK-MASQ")


def test_large_cluster_mode_drops_endpoint_comments() -> None:
    services = [svc(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}") for i in range(501)]
    slices = [
        eps(f"s{i}", [ep(f"10.244.{i // 250}.{i % 250 + 1}"), ep(f"10.245.0.{i % 250 + 1}")])
        for i in range(501)
    ]
    rs = build(state(services, slices), CONFIG)  # 1002 endpoints > 1000
    assert rs.large_cluster
    h = chain_hash("ns/s0:ptcp")
    assert nat(rs, f"KUBE-SVC-{h}")[1].startswith("-m statistic --mode random")
    sep = nat(rs, f"KUBE-SVC-{h}")[1].split("-j ")[1]
    assert nat(rs, sep) == (
        "-s 10.244.0.1 -j KUBE-MARK-MASQ",
        "-m tcp -p tcp -j DNAT --to-destination 10.244.0.1:8080",
    )
    # the cluster IP jump keeps its comment
    assert "cluster IP" in nat(rs, "KUBE-SERVICES")[0]
    # back under the threshold: everything is rebuilt with comments
    small = build(state(services[:10], slices[:10]), CONFIG, previous=rs)
    assert not small.large_cluster
    assert "-> 10.244.0.1:8080" in nat(small, f"KUBE-SVC-{h}")[1]


def test_both_policies_local_still_build_the_cluster_chain_they_jump_to() -> None:
    """Upstream UsesClusterEndpoints: an externally reachable port always needs the cluster
    chain (the EXT chain short-circuits pod and LOCAL traffic to it), even when both traffic
    policies are Local; a jump to an undeclared chain would fail the whole restore."""
    rs = _local_state(True, externalTrafficPolicy="Local", internalTrafficPolicy="Local")
    svc_chain = f"KUBE-SVC-{H80}"
    assert nat(rs, f"KUBE-EXT-{H80}")[0].endswith(f"-j {svc_chain}")
    targets = {
        line.rsplit("-j ", 1)[1].split()[0]
        for chains in rs.tables.values()
        for lines in chains.values()
        for line in lines
        if "-j KUBE-" in line
    }
    assert targets <= set(rs.tables["nat"]) | set(rs.tables["filter"])
    # both endpoints for short-circuited pod traffic, the local one only for the rest
    assert ["10.244.1.2:8080" in x or "10.244.2.2:8080" in x for x in nat(rs, svc_chain)] == [
        True,
        True,
    ]
    assert [x.split("-> ")[1].split('"')[0] for x in nat(rs, f"KUBE-SVL-{H80}") if "->" in x] == [
        "10.244.2.2:8080"
    ]
