"""Unit tests of net.proxy.iptables.cleanup (and which chains net.proxy.cleanup counts as ours):
which rules and chains `pykubelet proxy --cleanup` removes."""

from __future__ import annotations

from net.proxy.cleanup import ours
from net.proxy.iptables.cleanup import cleanup_text, iptables_mode_chains


def test_only_builtin_jumps_are_deleted_and_chains_others_use_are_kept() -> None:
    existing = {
        "nat": {"PREROUTING", "KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-SVC-ABC", "CNI-HOSTPORT"},
        "filter": set(),
    }
    foreign = {
        "nat": [
            '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
            "-A CNI-HOSTPORT -p tcp --dport 8080 -j KUBE-MARK-MASQ",
            "-A CNI-HOSTPORT -j RETURN",
        ]
    }
    lines = cleanup_text(existing, foreign).splitlines()
    assert '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in (
        lines
    )
    assert not any(line.startswith("-D CNI-HOSTPORT") for line in lines)
    assert "-X KUBE-MARK-MASQ" not in lines and ":KUBE-MARK-MASQ - [0:0]" not in lines
    assert "-X KUBE-SERVICES" in lines and "-X KUBE-SVC-ABC" in lines
    assert "*filter" not in lines


def test_nothing_of_ours_gives_no_input() -> None:
    assert cleanup_text({"nat": {"OTHER"}}, {"nat": ["-A OTHER -j RETURN"]}) == ""


def test_ours_are_iptables_and_ipvs_modes_chains() -> None:
    assert iptables_mode_chains("KUBE-SEP-ABC") and iptables_mode_chains("KUBE-MARK-MASQ")
    assert not iptables_mode_chains("KUBE-NODE-PORT") and ours("KUBE-NODE-PORT")  # IPVS mode's
    assert not ours("KUBE-FIREWALL")  # the kubelet's
    assert not ours("CNI-HOSTPORT")
    text = cleanup_text({"nat": {"KUBE-NODE-PORT"}}, {}, ours)
    assert text == "*nat\n:KUBE-NODE-PORT - [0:0]\n-X KUBE-NODE-PORT\nCOMMIT\n"
