"""The nf_tables batches of the nftables proxy: a full rewrite of every table we own, or a partial
one touching only changed Services' shard tables and the shared table's data sets (pure ops).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from net.nft import ir
from net.nft.nogc import no_gc
from net.proxy.model import ServiceKey
from net.proxy.nftables.rules import (
    Claim,
    NftFragment,
    NftRuleSet,
    claims_of,
    shard_index,
    shard_table,
)

# {table: (chain names, set names)} as read from the kernel
Existing = Mapping[str, tuple[Collection[str], Collection[str]]]


@dataclass(frozen=True)
class NftBatch:
    ops: list[ir.Op]
    changed: tuple[ServiceKey, ...]  # Services added, updated or removed by this batch
    removed_chains: tuple[str, ...]
    full: bool

    @property
    def empty(self) -> bool:
        """Nothing to apply (a partial batch with no changes)."""
        return not self.ops

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables the batch touches, sorted."""
        return tuple(sorted({op.table for op in self.ops}))


def full_batch(desired: NftRuleSet, existing: Existing | None = None) -> list[ir.Op]:
    """Ops rewriting everything we own: tables are added (never deleted) and flushed, every
    chain and set declared, non-dynamic sets flushed and refilled, every rule added; the
    affinity (timeout) sets keep their contents. Then our stale objects listed in `existing`
    are deleted, and stale pykube-proxy-NN tables beyond `desired.shards`."""
    with no_gc():
        return _full_ops(desired, existing or {})


def _full_ops(desired: NftRuleSet, existing: Existing) -> list[ir.Op]:
    tables = desired.tables()
    ops: list[ir.Op] = []
    for t in tables:
        ops += [ir.AddTable(t.name), ir.FlushTable(t.name)]
    for t in tables:
        ops += [ir.AddChain(t.name, chain) for chain, _rules in t.chains]
        for s, _elements in t.sets:
            ops.append(ir.AddSet(t.name, s))
            if s.timeout is None:
                ops.append(ir.FlushSet(t.name, s.name))
    for t in tables:
        table = t.name
        for chain, rules in t.chains:
            name = chain.name
            ops += [ir.AddRule(table, name, r) for r in rules]
        ops += [ir.AddElements(table, s.name, elems) for s, elems in t.sets if elems]
    ops.extend(_stale_ops(desired, tables, existing)[0])
    return ops


def _stale_ops(
    desired: NftRuleSet, tables: Iterable[ir.Table], existing: Existing
) -> tuple[list[ir.Op], list[str]]:
    """Deletes of stale sets (first: a stale map's elements may name stale chains), stale
    chains and stale shard tables; and the names of the chains deleted."""
    ours = {t.name: t for t in tables}
    sets: list[ir.Op] = []
    chains: list[ir.Op] = []
    dropped: list[str] = []
    drop_tables: list[ir.Op] = []
    for name in sorted(existing):
        t = ours.get(name)
        if t is None:
            index = shard_index(name)
            if index is not None and index >= desired.shards:
                drop_tables.append(ir.DeleteTable(name))
            continue
        have_chains = {c.name for c, _rules in t.chains}
        have_sets = {s.name for s, _elements in t.sets}
        old_chains, old_sets = existing[name]
        sets.extend(ir.DeleteSet(name, s) for s in sorted(old_sets) if s not in have_sets)
        stale = [c for c in sorted(old_chains) if c not in have_chains]
        chains.extend(ir.DeleteChain(name, c) for c in stale)
        dropped.extend(stale)
    return [*sets, *chains, *drop_tables], dropped


def _same(a: NftFragment | None, b: NftFragment | None) -> bool:
    if a is None or b is None:
        return a is b
    return b.same_rules(a)


def _changed_keys(desired: NftRuleSet, applied: NftRuleSet) -> list[ServiceKey]:
    new, old = desired.fragments, applied.fragments
    candidates: Iterable[ServiceKey] | None = desired.changed_since(applied)
    if candidates is None:  # not patched from `applied`: compare every Service
        keys = [k for k, f in new.items() if old.get(k) is not f]
        candidates = keys + [k for k in old if k not in new]
    return sorted(k for k in candidates if not _same(old.get(k), new.get(k)))


def partial_batch(desired: NftRuleSet, applied: NftRuleSet) -> NftBatch:
    """Ops moving the kernel from `applied` to `desired`, touching only the changed Services'
    shard tables and the shared table's Service sets: O(changed) when `desired` was built
    from `applied` (within a few builds). Falls back to a full batch (full=True) when the
    config or the shard count changed. Order: new chains and sets; flush and refill of
    changed chains; element deletes, then adds; flush, then delete of removed chains; delete
    of removed sets."""
    if applied.config != desired.config or applied.shards != desired.shards:
        return _full_fallback(desired, applied)
    keys = _changed_keys(desired, applied)
    adds: list[ir.Op] = []
    refills: list[ir.Op] = []
    removed: list[tuple[str, str]] = []
    removed_sets: list[ir.Op] = []
    claims: dict[Claim, None] = {}
    for key in keys:
        old, new = applied.fragments.get(key), desired.fragments.get(key)
        some = new if new is not None else old
        if some is None:  # absent on both sides: nothing to do
            continue
        table = shard_table(some.shard)
        old_chains = old.chains if old is not None else {}
        new_chains = new.chains if new is not None else {}
        old_sets = {s.name: s for s in old.sets} if old is not None else {}
        new_sets = {s.name: s for s in new.sets} if new is not None else {}
        adds.extend(ir.AddSet(table, s) for name, s in new_sets.items() if name not in old_sets)
        for chain, rules in new_chains.items():
            before = old_chains.get(chain)
            if before is None:
                adds.append(ir.AddChain(table, ir.Chain(chain)))
            elif before == rules:
                continue
            else:
                refills.append(ir.FlushChain(table, chain))
            refills.extend(ir.AddRule(table, chain, r) for r in rules)
        removed.extend((table, c) for c in old_chains if c not in new_chains)
        removed_sets.extend(ir.DeleteSet(table, s) for s in old_sets if s not in new_sets)
        for f in (old, new):
            if f is not None:
                claims.update(dict.fromkeys(claims_of(f)))
    deletes: dict[tuple[str, str], list[ir.Element]] = {}
    inserts: dict[tuple[str, str], list[ir.Element]] = {}
    for claim in claims:  # elements whose owner may have changed (a Service's, or a rival's)
        was, will = applied.placed(claim), desired.placed(claim)
        if was == will:
            continue
        if was is not None:
            deletes.setdefault((was[0], claim[0]), []).append(was[1])
        if will is not None:
            inserts.setdefault((will[0], claim[0]), []).append(will[1])
    ops: list[ir.Op] = [*adds, *refills]
    ops.extend(ir.DeleteElements(t, s, tuple(es)) for (t, s), es in deletes.items())
    ops.extend(ir.AddElements(t, s, tuple(es)) for (t, s), es in inserts.items())
    ops.extend(ir.FlushChain(t, c) for t, c in removed)
    ops.extend(ir.DeleteChain(t, c) for t, c in removed)
    ops.extend(removed_sets)
    return NftBatch(ops, tuple(keys), tuple(c for _t, c in removed), False)


def _full_fallback(desired: NftRuleSet, applied: NftRuleSet) -> NftBatch:
    existing = {
        t.name: ([c.name for c, _r in t.chains], [s.name for s, _e in t.sets])
        for t in applied.tables()
    }
    ops = full_batch(desired, existing)
    _ops, dropped = _stale_ops(desired, desired.tables(), existing)
    new, old = desired.fragments, applied.fragments
    keys = [k for k, f in new.items() if not _same(old.get(k), f)]
    keys.extend(k for k in old if k not in new)
    return NftBatch(ops, tuple(sorted(keys)), tuple(dropped), True)
