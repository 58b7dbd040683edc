"""Swap at start-up: /proc/swaps read as upstream reads it, failSwapOn refusing a node with swap
on (upstream's message), LimitedSwap refused on cgroup v1 and a warning elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet import swap
from kubelet.config import KubeletConfiguration
from kubelet.config.model import MemorySwap

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
ON = HEADER + "/swapfile                               file\t\t2097148\t\t0\t\t-2\n"


def swaps(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "swaps"
    path.write_text(text)
    return path


def test_swap_on_means_more_than_the_header() -> None:
    assert not swap.swap_on(HEADER)
    assert not swap.swap_on("")
    assert swap.swap_on(ON)


def test_fail_swap_on_refuses_a_node_with_swap(tmp_path: Path) -> None:
    with pytest.raises(swap.SwapError) as info:
        swap.check(KubeletConfiguration(), cgroup_v2=True, note=print, swaps=swaps(tmp_path, ON))
    assert str(info.value) == (
        "running with swap on is not supported, please disable swap or set --fail-swap-on "
        "flag to false"
    )


def test_no_swap_or_a_missing_file_is_fine(tmp_path: Path) -> None:
    notes: list[str] = []
    kc = KubeletConfiguration()
    assert not swap.check(kc, cgroup_v2=False, note=notes.append, swaps=swaps(tmp_path, HEADER))
    assert not swap.check(kc, cgroup_v2=None, note=notes.append, swaps=tmp_path / "missing")
    assert notes == []


def test_swap_allowed_with_fail_swap_on_false_is_a_warning(tmp_path: Path) -> None:
    notes: list[str] = []
    kc = KubeletConfiguration(fail_swap_on=False)
    assert swap.check(kc, cgroup_v2=True, note=notes.append, swaps=swaps(tmp_path, ON))
    assert len(notes) == 1 and "pykubelet sets no per-container swap limits" in notes[0]


def test_limited_swap_needs_cgroup_v2(tmp_path: Path) -> None:
    kc = KubeletConfiguration(fail_swap_on=False, memory_swap=MemorySwap("LimitedSwap"))
    path = swaps(tmp_path, ON)
    with pytest.raises(swap.SwapError, match="only supported with cgroupv2"):
        swap.check(kc, cgroup_v2=False, note=print, swaps=path)
    notes: list[str] = []
    swap.check(kc, cgroup_v2=True, note=notes.append, swaps=path)
    assert notes == [
        "KubeletConfiguration.memorySwap.swapBehavior: 'LimitedSwap' is not implemented by "
        "pykubelet: it sets no per-container swap limits"
    ]
