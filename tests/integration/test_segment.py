"""The netns segment builder (cluster.segment) against the kernel: a member whose
wiring fails is not left half-made, so the next (idempotent) build makes it whole."""

from __future__ import annotations

import os

import pytest

from cluster import hostops, segment


def test_a_failed_member_is_removed_and_the_next_build_makes_it(root_required: None) -> None:
    tag = os.getpid() % 100000
    switch, host = f"pkseg{tag}s", f"pkseg{tag}h"
    try:
        with pytest.raises(segment.SegmentError, match=r"10\.77\.0\.300/24"):
            segment.build(switch, [segment.Member(host, "10.77.0.300/24")])
        names = hostops.netns_names()
        assert host not in names and switch in names
        segment.build(switch, [segment.Member(host, "10.77.0.2/24")])
        assert "10.77.0.2/24" in segment.ip("-n", host, "-br", "addr", "show", "dev", "eth0")
    finally:
        segment.remove(switch, [host])
    assert not {switch, host} & set(hostops.netns_names())
