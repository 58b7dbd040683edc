"""Rendering a RuleSet as `iptables-restore --noflush` text: full, or partial against the
last applied RuleSet (only changed Services' chains, -D/-I of their lines in shared chains).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from net.proxy.iptables.rules import FILTER, NAT, SHARED_CHAINS, Fragment, RuleSet, is_service_chain
from net.proxy.iptables.saved import JumpKey, jump_key
from net.proxy.model import ServiceKey

TABLES = (FILTER, NAT)


@dataclass(frozen=True)
class Restore:
    text: str
    full: bool
    changed: tuple[ServiceKey, ...]  # Services added, updated or removed by this restore
    removed_chains: tuple[str, ...]
    lines: int

    @property
    def empty(self) -> bool:
        """Nothing to apply (a partial restore with no changes)."""
        return not self.text


def render(
    desired: RuleSet,
    applied: RuleSet | None,
    *,
    full: bool,
    existing: Mapping[str, Collection[str]] | None = None,
    jumps_present: Mapping[str, Collection[JumpKey]] | None = None,
) -> Restore:
    """Restore text moving the kernel from `applied` (None: unknown) to `desired`.
    A full restore declares and rewrites every chain we own and deletes stale per-Service
    chains (from `applied` and from `existing`, the chains found in the kernel). A partial
    one touches only the chains and shared-chain lines of changed Services; it falls back to
    full when the configuration (and so the shared chains' fixed lines) or the large-cluster
    mode (every Service's comments) changed. With `jumps_present` (the builtin-chain jumps
    found in the kernel, per table), a full restore also inserts the missing builtin jumps."""
    if (
        applied is None
        or full
        or applied.config != desired.config
        or applied.large_cluster != desired.large_cluster
    ):
        return _full(desired, applied, existing, jumps_present)
    return _partial(desired, applied)


def _changed_keys(desired: RuleSet, applied: RuleSet | None) -> list[ServiceKey]:
    if applied is None:
        return sorted(desired.fragments)
    old = applied.fragments
    get = old.get
    candidates = desired.changed_since(applied)
    if candidates is not None:  # patched from `applied`: only these can differ
        new = desired.fragments
        out = [k for k in candidates if k in new and not _same(get(k), new[k])]
        out.extend(k for k in candidates if k not in new and k in old)
        return sorted(out)
    keys = [k for k, f in desired.fragments.items() if get(k) is not f]
    keys = [k for k in keys if not _same(get(k), desired.fragments[k])]
    keys.extend(k for k in old if k not in desired.fragments)
    return sorted(keys)


def _same(a: Fragment | None, b: Fragment) -> bool:
    return a is b or (a is not None and a.chains == b.chains and a.jumps == b.jumps)


def _full(
    desired: RuleSet,
    applied: RuleSet | None,
    existing: Mapping[str, Collection[str]] | None,
    jumps_present: Mapping[str, Collection[JumpKey]] | None = None,
) -> Restore:
    out: list[str] = []
    removed: list[str] = []
    for table in TABLES:
        chains = desired.tables.get(table, {})
        stale: set[str] = set()
        for source in (
            (applied.tables.get(table, {}) if applied else {}),
            (existing or {}).get(table, ()),
        ):
            stale.update(c for c in source if is_service_chain(c) and c not in chains)
        out.append(f"*{table}")
        shared = SHARED_CHAINS[table]
        out.extend(f":{c} - [0:0]" for c in shared if c in chains)
        out.extend(f":{c} - [0:0]" for c in chains if c not in shared)
        out.extend(f":{c} - [0:0]" for c in sorted(stale))
        for c in shared:
            out.extend(f"-A {c} {line}" for line in chains.get(c, ()))
        for c, lines in chains.items():
            if c not in shared:
                out.extend(f"-A {c} {line}" for line in lines)
        out.extend(f"-X {c}" for c in sorted(stale))
        if jumps_present is not None:
            present = jumps_present.get(table, ())
            out.extend(
                f"-I {chain} 1 {rule}"
                for t, chain, rule in desired.jumps
                if t == table and jump_key(chain, rule) not in present
            )
        out.append("COMMIT")
        removed.extend(sorted(stale))
    text = "\n".join(out) + "\n"
    return Restore(text, True, tuple(_changed_keys(desired, applied)), tuple(removed), len(out))


def _partial(desired: RuleSet, applied: RuleSet) -> Restore:
    keys = _changed_keys(desired, applied)
    out: list[str] = []
    removed: list[str] = []
    for table in TABLES:
        declare: list[str] = []
        deletes: list[str] = []
        inserts: list[str] = []
        appends: list[str] = []
        drops: list[str] = []
        for key in keys:
            old = applied.fragments.get(key)
            new = desired.fragments.get(key)
            old_chains = {c: v for (t, c), v in old.chains.items() if t == table} if old else {}
            new_chains = {c: v for (t, c), v in new.chains.items() if t == table} if new else {}
            for c, lines in new_chains.items():
                if old_chains.get(c) != lines:
                    declare.append(c)
                    appends.extend(f"-A {c} {line}" for line in lines)
            for c in old_chains:
                if c not in new_chains:
                    declare.append(c)
                    drops.append(c)
            old_j = [(c, line) for t, c, line in old.jumps if t == table] if old else []
            new_j = [(c, line) for t, c, line in new.jumps if t == table] if new else []
            old_set, new_set = set(old_j), set(new_j)
            deletes.extend(f"-D {c} {line}" for c, line in old_j if (c, line) not in new_set)
            added = [f"-I {c} 1 {line}" for c, line in new_j if (c, line) not in old_set]
            inserts.extend(reversed(added))
        if not (declare or deletes or inserts or drops):
            continue
        out.append(f"*{table}")
        out.extend(f":{c} - [0:0]" for c in declare)
        out.extend(deletes)
        out.extend(inserts)
        out.extend(appends)
        out.extend(f"-X {c}" for c in drops)
        out.append("COMMIT")
        removed.extend(drops)
    text = "\n".join(out) + "\n" if out else ""
    return Restore(text, False, tuple(keys), tuple(removed), len(out))
