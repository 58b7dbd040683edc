"""Removing nftables mode's tables from this netns (`pykubelet proxy --cleanup`): every
`pykube-proxy*` table of ours in one transaction; other programs' tables stay.
"""

from __future__ import annotations

from net.nft import ir
from net.proxy.nftables.backend import PREFIX, Existing, NftKernel, ours


def nftables_ops(existing: Existing) -> list[ir.Op]:
    """Deleting every table of ours found (a table goes with its chains, rules and sets);
    other programs' tables, even with a similar name, stay."""
    return [ir.DeleteTable(t) for t in sorted(existing) if ours(t)]


def cleanup_nftables(kernel: NftKernel) -> int:
    """Delete nftables mode's tables in one transaction; returns how many."""
    ops = nftables_ops(kernel.tables(PREFIX))
    if ops:
        kernel.apply(ops)
    return len(ops)
