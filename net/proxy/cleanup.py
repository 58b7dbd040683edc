"""`pykubelet proxy --cleanup` (and `pykubelet down` for a proxy that ran in the root netns):
remove what any proxy mode made in this netns, whichever mode ran: nftables mode's tables, then
iptables and IPVS modes' jumps and chains (one restore), then IPVS mode's ipsets.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from net.proxy.iptables import executor
from net.proxy.iptables.cleanup import iptables_mode_chains, remove_chains
from net.proxy.iptables.executor import Executor, RestoreError
from net.proxy.ipvs.cleanup import destroy_ipsets, fixed_chains
from net.proxy.settings import EXIT_UNSUPPORTED

Runner = Callable[..., subprocess.CompletedProcess[str]]


def ours(chain: str) -> bool:
    """Is `chain` one that iptables or IPVS mode makes?"""
    return iptables_mode_chains(chain) or chain in fixed_chains()


def cleanup(iptables: Executor, run: Runner = subprocess.run) -> int:
    """Remove iptables and IPVS modes' rules and IPVS mode's ipsets; returns how many chains
    were deleted (RestoreError when the restore is refused)."""
    removed = remove_chains(iptables, ours)
    destroy_ipsets(run)
    return removed


def _cleanup_nftables() -> int | None:
    """Delete our nftables tables: how many; None (after a one-line error) when that failed."""
    from net.nft.netlink import NftError, NftNetlink
    from net.proxy.nftables.cleanup import cleanup_nftables

    try:
        kernel = NftNetlink()
    except OSError as exc:
        print(f"pykubelet proxy --cleanup: nftables: {exc}", file=sys.stderr)
        return None
    try:
        return cleanup_nftables(kernel)
    except (NftError, OSError) as exc:
        print(f"pykubelet proxy --cleanup: nftables: {exc}", file=sys.stderr)
        return None
    finally:
        kernel.close()


def main() -> int:
    """Clean up, print what went, and return the exit status."""
    # nftables first: a host without iptables may still hold nftables mode's tables
    tables = _cleanup_nftables()
    try:
        iptables = Executor(executor.detect())
    except (RuntimeError, OSError) as exc:
        print(f"pykubelet proxy: {exc}", file=sys.stderr)
        if tables is not None:
            print(f"removed {tables} nftables tables; no iptables here")
        return EXIT_UNSUPPORTED
    try:
        removed = cleanup(iptables)
    except RestoreError as exc:
        print(f"pykubelet proxy --cleanup: {exc}", file=sys.stderr)
        return 1
    if tables is None:
        return 1
    more = f", {tables} nftables tables" if tables else ""
    print(f"removed {removed} chains ({iptables.backend.name}){more}")
    return 0
