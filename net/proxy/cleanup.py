"""Removing every rule and chain the proxy made in this netns (`pykubelet proxy --cleanup`, and
`pykubelet down` for a proxy that ran in the root netns): the builtin jumps, then our chains;
nftables mode's `pykube-proxy*` tables.
"""

from __future__ import annotations

import functools
import logging
import shlex
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from net.proxy.iptables import rules
from net.proxy.iptables.executor import Executor, RestoreError
from net.proxy.ipvs import plan as ipvs_plan
from net.proxy.model import ProxyConfig

if TYPE_CHECKING:
    from net.nft import ir
    from net.proxy.nftables.backend import Existing, NftKernel

log = logging.getLogger(__name__)


@functools.cache
def _fixed_chains() -> frozenset[str]:
    """Chains of both modes that are not per Service (iptables' shared ones, IPVS mode's)."""
    shared = {c for chains in rules.SHARED_CHAINS.values() for c in chains}
    ipvs = ipvs_plan.iptables_rules(ProxyConfig(node_name="", node_ips=()))
    shared.update(c for chains in ipvs.values() for c in chains)
    return frozenset(shared)


def ours(chain: str) -> bool:
    return chain in _fixed_chains() or rules.is_service_chain(chain)


BUILTIN_CHAINS = frozenset({"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"})


def cleanup_text(existing: dict[str, set[str]], foreign_rules: dict[str, list[str]]) -> str:
    """Restore input deleting our jumps from builtin chains (`-D` lines taken from the saved
    rules, so only ones that exist) and flushing then deleting our chains. `foreign_rules`
    are the saved `-A` lines of chains that are not ours: rules of other programs' own chains
    are never touched, and a chain of ours they still jump to (KUBE-MARK-MASQ, typically) is
    kept, as deleting it would make the whole table's restore fail."""
    out: list[str] = []
    for table in (rules.FILTER, rules.NAT):
        jumps, needed = [], set()
        for line in foreign_rules.get(table, []):
            target = _target(line)
            if target is None or not ours(target):
                continue
            if line.split()[1] in BUILTIN_CHAINS:
                jumps.append(line)
            else:
                needed.add(target)
        mine = sorted(c for c in existing.get(table, set()) if ours(c) and c not in needed)
        if needed:
            log.warning("keeping %s in %s: other chains still jump to it", sorted(needed), table)
        if not mine and not jumps:
            continue
        out.append(f"*{table}")
        out.extend(f"-D {line[3:]}" for line in jumps)
        out.extend(f":{c} - [0:0]" for c in mine)
        out.extend(f"-X {c}" for c in mine)
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def _target(line: str) -> str | None:
    parts = shlex.split(line)
    return parts[parts.index("-j") + 1] if "-j" in parts[:-1] else None


def cleanup(
    executor: Executor, run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> int:
    """Remove our rules (and IPVS mode's ipsets) from the kernel; returns how many chains were
    deleted. IPVS virtual servers and kube-ipvs0 are not touched (no IPVS kernel to test on)."""
    existing: dict[str, set[str]] = {}
    foreign: dict[str, list[str]] = {}
    for table in (rules.FILTER, rules.NAT):
        saved = executor.save((table,))
        existing[table] = {ln[1:].split()[0] for ln in saved.splitlines() if ln.startswith(":")}
        foreign[table] = [
            ln for ln in saved.splitlines() if ln.startswith("-A ") and not ours(ln.split()[1])
        ]
    text = cleanup_text(existing, foreign)
    if text:
        try:
            executor.restore(text)
        except RestoreError as exc:
            log.error("cleanup failed: %s", exc)
            raise
    for name in ipvs_plan.IPSETS:  # after the rules that name them
        try:
            run(["ipset", "destroy", name], capture_output=True, text=True)
        except OSError:
            break
    return sum(1 for line in text.splitlines() if line.startswith("-X "))


def nftables_ops(existing: Existing) -> list[ir.Op]:
    """Deleting every table of ours found (a table goes with its chains, rules and sets);
    other programs' tables, even with a similar name, stay."""
    from net.nft import ir
    from net.proxy.nftables.backend import ours

    return [ir.DeleteTable(t) for t in sorted(existing) if ours(t)]


def cleanup_nftables(kernel: NftKernel) -> int:
    """Delete nftables mode's tables in one transaction; returns how many."""
    from net.proxy.nftables.backend import PREFIX

    ops = nftables_ops(kernel.tables(PREFIX))
    if ops:
        kernel.apply(ops)
    return len(ops)
