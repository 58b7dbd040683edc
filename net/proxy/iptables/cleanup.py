"""Removing the iptables rules and chains of the proxy from this netns (`pykubelet proxy
--cleanup`): our jumps from the builtin chains, then our chains, in one restore; rules of other
programs' chains are never touched. Which chains are ours, the caller says.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable

from net.proxy.iptables import rules
from net.proxy.iptables.executor import Executor, RestoreError

log = logging.getLogger(__name__)

BUILTIN_CHAINS = frozenset({"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"})


def iptables_mode_chains(chain: str) -> bool:
    """Is `chain` one iptables mode makes (shared or per Service)?"""
    return rules.is_service_chain(chain) or any(chain in c for c in rules.SHARED_CHAINS.values())


def cleanup_text(
    existing: dict[str, set[str]],
    foreign_rules: dict[str, list[str]],
    ours: Callable[[str], bool] = iptables_mode_chains,
) -> str:
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


def remove_chains(executor: Executor, ours: Callable[[str], bool] = iptables_mode_chains) -> int:
    """Remove our jumps and chains from the kernel; returns how many chains were deleted.
    Raises RestoreError (logged) when the restore is refused."""
    existing: dict[str, set[str]] = {}
    foreign: dict[str, list[str]] = {}
    for table in (rules.FILTER, rules.NAT):
        saved = executor.save((table,))
        existing[table] = {ln[1:].split()[0] for ln in saved.splitlines() if ln.startswith(":")}
        foreign[table] = [
            ln for ln in saved.splitlines() if ln.startswith("-A ") and not ours(ln.split()[1])
        ]
    text = cleanup_text(existing, foreign, ours)
    if text:
        try:
            executor.restore(text)
        except RestoreError as exc:
            log.error("cleanup failed: %s", exc)
            raise
    return sum(1 for line in text.splitlines() if line.startswith("-X "))
