"""Unit tests of net.proxy.iptables.render: full and partial iptables-restore text, checked by
applying it to an in-memory table model, and golden files of representative states.

Golden files live in tests/unit/net/proxy/iptables/golden/. After an intended change of the rules,
regenerate them with
    PYKUBELET_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/net/proxy/iptables/test_render.py
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from net.proxy.iptables.render import render
from net.proxy.iptables.rules import RuleSet, build
from net.proxy.model import ProxyConfig
from tests.unit.net.proxy.rule_objects import (
    CONFIG,
    NODE,
    Kernel,
    RestoreError,
    apply_restore,
    ep,
    eps,
    state,
    svc,
)

GOLDEN = Path(__file__).parent / "golden"


def _np(port: int, node_port: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "p", "port": port, "nodePort": node_port, **extra}]


CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], ProxyConfig]] = {
    "clusterip": (
        [svc("web", "10.96.0.10"), svc("empty", "10.96.0.11")],
        [eps("web", [ep("10.244.1.2"), ep("10.244.1.3"), ep("10.244.1.4")])],
        CONFIG,
    ),
    "nodeport_local": (
        [
            svc(
                "np",
                "10.96.0.20",
                _np(80, 30080),
                type="NodePort",
                externalTrafficPolicy="Local",
                externalIPs=["192.0.2.9"],
            ),
            svc(
                "nolocal",
                "10.96.0.21",
                _np(80, 30081),
                type="NodePort",
                externalTrafficPolicy="Local",
            ),
        ],
        [
            eps("np", [ep("10.244.1.2", "node-b"), ep("10.244.2.2", NODE)]),
            eps("nolocal", [ep("10.244.1.5", "node-b")]),
        ],
        ProxyConfig(
            NODE,
            ("192.168.5.2",),
            cluster_cidr="10.244.0.0/16",
            nodeport_addresses=("192.168.5.0/24",),
        ),
    ),
    "loadbalancer_affinity": (
        [
            svc(
                "lb",
                "10.96.0.30",
                [
                    {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
                    {"name": "s", "port": 9, "protocol": "SCTP", "nodePort": 30009},
                ],
                type="LoadBalancer",
                sessionAffinity="ClientIP",
                loadBalancerSourceRanges=["203.0.113.0/24"],
                healthCheckNodePort=32000,
                status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
            )
        ],
        [
            eps(
                "lb",
                [ep("10.244.1.2"), ep("10.244.1.3", ready=False, serving=True, terminating=True)],
                [
                    {"name": "dns", "port": 5353, "protocol": "UDP"},
                    {"name": "s", "port": 99, "protocol": "SCTP"},
                ],
            )
        ],
        ProxyConfig(NODE, ("192.168.5.2",), masquerade_all=True),
    ),
    "terminating_internal_local": (
        [svc("t", "10.96.0.40", internalTrafficPolicy="Local")],
        [
            eps(
                "t",
                [
                    ep("10.244.2.3", NODE, ready=False, serving=True, terminating=True),
                    ep("10.244.1.3", "node-b"),
                ],
            )
        ],
        CONFIG,
    ),
}


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PYKUBELET_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; set PYKUBELET_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize("case", sorted(CASES))
def test_full_render_golden(case: str) -> None:
    services, slices, config = CASES[case]
    r = render(build(state(services, slices), config), None, full=True)
    _check_golden(f"{case}.restore", r.text)
    kernel: Kernel = {}
    apply_restore(kernel, r.text)  # declares every chain before jumping to it
    assert r.full and r.lines == len(r.text.splitlines())


def _all_services(n: int = 12) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    services = [
        svc(f"s{i}", f"10.96.0.{i}", _np(80, 30000 + i), type="NodePort") for i in range(1, n)
    ]
    slices = [eps(f"s{i}", [ep(f"10.244.1.{i}"), ep(f"10.244.2.{i}")]) for i in range(1, n)]
    return services, slices


def _canonical(kernel: Kernel) -> dict[str, dict[str, list[str]]]:
    """Chains with their rules; shared chains compared as sorted lists (their order of
    Service rules does not matter) but the nodeports jump must stay last."""
    out: dict[str, dict[str, list[str]]] = {}
    for t, chains in kernel.items():
        out[t] = {}
        for c, rules in chains.items():
            if c == "KUBE-SERVICES" and t == "nat":
                assert rules and "KUBE-NODEPORTS" in rules[-1], "nodeports jump must be last"
            out[t][c] = (
                sorted(rules)
                if c in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES")
                else list(rules)
            )
    return out


def _via_partial(before: RuleSet, after: RuleSet) -> tuple[Kernel, str]:
    kernel: Kernel = {}
    apply_restore(kernel, render(before, None, full=True).text)
    r = render(after, before, full=False)
    assert not r.full
    apply_restore(kernel, r.text)
    return kernel, r.text


def _via_full(after: RuleSet) -> Kernel:
    kernel: Kernel = {}
    apply_restore(kernel, render(after, None, full=True).text)
    return kernel


def test_partial_endpoint_change_touches_only_that_service() -> None:
    services, slices = _all_services()
    before = build(state(services, slices), CONFIG)
    slices[4] = eps("s5", [ep("10.244.1.5")])  # one endpoint gone
    after = build(state(services, slices), CONFIG, previous=before)
    kernel, text = _via_partial(before, after)
    assert _canonical(kernel) == _canonical(_via_full(after))
    r = render(after, before, full=False)
    assert r.changed == (("ns", "s5"),)
    assert ":KUBE-SERVICES" not in text and "-A KUBE-SERVICES" not in text
    assert len(r.removed_chains) == 1 and r.removed_chains[0].startswith("KUBE-SEP-")
    assert r.lines < 15


def test_partial_service_added_and_removed() -> None:
    services, slices = _all_services()
    before = build(state(services, slices), CONFIG)
    services2 = [s for s in services if s["metadata"]["name"] != "s3"]
    services2.append(svc("new", "10.96.1.1", _np(80, 31000), type="NodePort"))
    slices2 = [*slices, eps("new", [ep("10.244.3.1")])]
    after = build(state(services2, slices2), CONFIG, previous=before)
    kernel, text = _via_partial(before, after)
    assert _canonical(kernel) == _canonical(_via_full(after))
    assert "-D KUBE-SERVICES" in text and "-I KUBE-SERVICES 1 " in text
    assert "-D KUBE-NODEPORTS" in text and "-I KUBE-NODEPORTS 1 " in text
    assert ":KUBE-SERVICES" not in text
    r = render(after, before, full=False)
    assert set(r.changed) == {("ns", "s3"), ("ns", "new")}
    assert len(r.removed_chains) == 4  # KUBE-SVC, KUBE-EXT and two KUBE-SEP chains of s3
    assert all(not c.startswith("KUBE-SERVICES") for c in r.removed_chains)


def test_partial_endpoints_all_gone_moves_to_reject() -> None:
    services, slices = _all_services()
    before = build(state(services, slices), CONFIG)
    after = build(state(services, slices[1:]), CONFIG, previous=before)
    kernel, text = _via_partial(before, after)
    assert _canonical(kernel) == _canonical(_via_full(after))
    assert '-I KUBE-SERVICES 1 -m comment --comment "ns/s1:p has no endpoints"' in text
    assert "-I KUBE-EXTERNAL-SERVICES 1 " in text


def test_partial_without_changes_is_empty() -> None:
    services, slices = _all_services()
    before = build(state(services, slices), CONFIG)
    after = build(state(services, slices), CONFIG, previous=before)
    r = render(after, before, full=False)
    assert r.empty and r.lines == 0 and r.changed == ()


def test_config_change_forces_full() -> None:
    services, slices = _all_services()
    before = build(state(services, slices), CONFIG)
    cfg = ProxyConfig(NODE, ("192.168.5.2",), masquerade_all=True)
    r = render(build(state(services, slices), cfg), before, full=False)
    assert r.full and ":KUBE-SERVICES - [0:0]" in r.text


def test_full_deletes_stale_chains_from_applied_and_kernel() -> None:
    services, slices = _all_services()
    before = build(state(services, slices), CONFIG)
    after = build(state(services[1:], slices[1:]), CONFIG)
    kernel: Kernel = {}
    apply_restore(kernel, render(before, None, full=True).text)
    leftover = "KUBE-SVC-LEFTOVERFROMOLDRUN"
    kernel["nat"][leftover] = ["-j KUBE-MARK-MASQ"]
    kernel["nat"]["CUSTOM-NOT-OURS"] = []
    r = render(after, before, full=True, existing={"nat": list(kernel["nat"])})
    apply_restore(kernel, r.text)
    assert leftover in r.removed_chains and leftover not in kernel["nat"]
    assert "CUSTOM-NOT-OURS" in kernel["nat"]
    assert _canonical(kernel) == _canonical(
        {**_via_full(after), "nat": {**_via_full(after)["nat"], "CUSTOM-NOT-OURS": []}}
    )
    assert r.changed == (("ns", "s1"),)


def test_partial_sequence_stays_consistent() -> None:
    """Many partial syncs in a row leave the same chains as one full restore."""
    services, slices = _all_services()
    rs = build(state(services, slices), CONFIG)
    kernel = _via_full(rs)
    for step in range(1, 8):
        slices[step] = eps(f"s{step + 1}", [ep(f"10.244.{5 + step}.1")] * (step % 3))
        nxt = build(state(services, slices), CONFIG, previous=rs)
        apply_restore(kernel, render(nxt, rs, full=False).text)
        rs = nxt
    assert _canonical(kernel) == _canonical(_via_full(rs))


def test_interpreter_catches_bad_text() -> None:
    kernel: Kernel = {}
    with pytest.raises(RestoreError):
        apply_restore(kernel, "*nat\n-A KUBE-NOPE -j ACCEPT\nCOMMIT\n")
    with pytest.raises(RestoreError):
        apply_restore(kernel, "*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-X B\nCOMMIT\n")
    assert kernel == {}


def test_large_cluster_mode_switch_forces_full() -> None:
    services = [svc(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}") for i in range(600)]
    slices = [eps(f"s{i}", [ep(f"10.244.{i // 250}.{i % 250 + 1}")]) for i in range(600)]
    small = build(state(services, slices), CONFIG)
    slices.append(
        eps("s0", [ep(f"10.246.{i // 250}.{i % 250 + 1}") for i in range(500)], name="s0-more")
    )
    large = build(state(services, slices), CONFIG, previous=small)
    assert large.large_cluster and not small.large_cluster
    r = render(large, small, full=False)
    assert r.full
    kernel: Kernel = {}
    apply_restore(kernel, render(small, None, full=True).text)
    apply_restore(kernel, r.text)
    assert _canonical(kernel) == _canonical(_via_full(large))


def test_partial_against_an_older_or_unrelated_applied_ruleset() -> None:
    """After a failed restore the daemon renders against an older RuleSet: the ancestry
    delta (or, for an unrelated one, a scan of every fragment) still finds every change."""
    services, slices = _all_services()
    first = build(state(services, slices), CONFIG)
    slices[1] = eps("s2", [ep("10.244.9.2")])
    second = build(state(services, slices), CONFIG, previous=first, changed=[("ns", "s2")])
    slices[2] = eps("s3", [ep("10.244.9.3")])
    third = build(state(services, slices), CONFIG, previous=second, changed=[("ns", "s3")])
    assert third.changed_since(first) == frozenset({("ns", "s2"), ("ns", "s3")})
    unrelated = build(state(services, slices[:1] + slices[3:]), CONFIG)
    assert third.changed_since(unrelated) is None
    for applied in (first, unrelated):
        kernel, _ = _via_partial(applied, third)
        assert _canonical(kernel) == _canonical(_via_full(third))
    assert render(third, first, full=False).changed == (("ns", "s2"), ("ns", "s3"))
    assert render(third, unrelated, full=False).changed == (("ns", "s2"), ("ns", "s3"))
