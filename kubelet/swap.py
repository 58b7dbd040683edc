"""Swap at start-up, as upstream's container manager checks it: /proc/swaps read once, failSwapOn
refusing a node with swap on, and memorySwap.swapBehavior checked against the cgroup version.
Reads one file; starts nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kubelet.config.model import KubeletConfiguration
from kubelet.config.schema import Note

log = logging.getLogger(__name__)
PROC_SWAPS = Path("/proc/swaps")
SWAP_ON = (
    "running with swap on is not supported, please disable swap or set --fail-swap-on flag to false"
)
LIMITED_ON_V1 = "swap feature is enabled and LimitedSwap but it is only supported with cgroupv2"


class SwapError(Exception):
    """The node's swap does not fit the configuration; the message is upstream's."""


def swap_on(proc_swaps: str) -> bool:
    """Whether /proc/swaps lists any swap area (anything beyond its header line)."""
    return len(proc_swaps.strip().split("\n")) > 1


def read_swaps(path: Path = PROC_SWAPS) -> str:
    """The text of /proc/swaps; a missing file means no swap, as upstream assumes."""
    try:
        return path.read_text()
    except FileNotFoundError:
        log.info("%s does not exist, assuming that swap is disabled", path)
        return ""
    except OSError as e:
        raise SwapError(f"failed to determine if swap is on: {e}") from None


def check(
    kc: KubeletConfiguration,
    *,
    cgroup_v2: bool | None,
    note: Note,
    swaps: Path = PROC_SWAPS,
) -> bool:
    """Refuse swap when failSwapOn is set, and LimitedSwap on cgroup v1 (`cgroup_v2` None:
    unknown, not checked). pykubelet sets no per-container swap limits, so LimitedSwap, and swap
    left on with failSwapOn: false, are warnings saying so. Returns whether swap is on."""
    text = read_swaps(swaps)
    on = swap_on(text)
    if on:
        log.info("swap is on: %s", " | ".join(text.strip().split("\n")[1:]))
        if kc.fail_swap_on:
            raise SwapError(SWAP_ON)
    behavior = kc.memory_swap.swap_behavior
    if behavior == "LimitedSwap":
        if cgroup_v2 is False:
            raise SwapError(LIMITED_ON_V1)
        note(
            "KubeletConfiguration.memorySwap.swapBehavior: 'LimitedSwap' is not implemented by "
            "pykubelet: it sets no per-container swap limits"
        )
    elif on:
        note(
            "swap is on and failSwapOn is false: pykubelet sets no per-container swap limits "
            "(upstream's NoSwap sets memory.swap.max to 0), so workloads may use swap"
        )
    return on
