"""The netns "hosts" helper builds reachable hosts and removes every namespace it made."""

from __future__ import annotations

import pytest

from cluster import hostops

from .netns_hosts import hosts


def test_hosts_reach_each_other_and_vanish(root_required: None) -> None:
    before = set(hostops.netns_names())
    with hosts(2, prefix="pktnh") as (h1, h2):
        assert {h1.netns, h2.netns, "pktnh-sw"} <= set(hostops.netns_names())
        out = h1.run("busybox", "ping", "-c", "1", "-W", "2", h2.address)
        assert "1 packets received" in out
    assert set(hostops.netns_names()) == before


def test_hosts_cleanup_on_error(root_required: None) -> None:
    before = set(hostops.netns_names())
    with pytest.raises(RuntimeError, match="boom"), hosts(1, prefix="pktne"):
        raise RuntimeError("boom")
    assert set(hostops.netns_names()) == before
