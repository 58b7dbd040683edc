"""What `pykubelet proxy --cleanup` removes of IPVS mode besides iptables chains: its ipsets.
IPVS virtual servers and kube-ipvs0 are not touched (no IPVS kernel here to test that on).
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable

from net.proxy.ipvs import plan
from net.proxy.model import ProxyConfig


@functools.cache
def fixed_chains() -> frozenset[str]:
    """The iptables chains IPVS mode makes (none per Service)."""
    tables = plan.iptables_rules(ProxyConfig(node_name="", node_ips=()))
    return frozenset(c for chains in tables.values() for c in chains)


def destroy_ipsets(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> None:
    """`ipset destroy` of every set IPVS mode uses (after the rules that name them are gone)."""
    for name in plan.IPSETS:
        try:
            run(["ipset", "destroy", name], capture_output=True, text=True)
        except OSError:
            break
