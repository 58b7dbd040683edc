"""Which UDP conntrack entries go stale when endpoints change, and the commands that flush them."""

from __future__ import annotations

import subprocess
from typing import Any

from net.proxy.conntrack import Conntrack, Flush, stale_flushes

VIP = ("10.0.0.10", 53, "UDP")
NODEPORT = ("", 30053, "UDP")


def test_removed_endpoint_flushes_only_entries_nated_to_it() -> None:
    before = {VIP: frozenset({"10.1.0.2", "10.1.0.3"})}
    after = {VIP: frozenset({"10.1.0.2"})}
    assert stale_flushes(before, after) == [Flush("UDP", "10.0.0.10", 53, "10.1.0.3")]


def test_first_endpoint_flushes_the_frontend() -> None:
    before = {VIP: frozenset[str](), NODEPORT: frozenset[str]()}
    after = {VIP: frozenset({"10.1.0.2"}), NODEPORT: frozenset({"10.1.0.2"})}
    assert stale_flushes(before, after) == [
        Flush("UDP", "", 30053),
        Flush("UDP", "10.0.0.10", 53),
    ]


def test_removed_frontend_with_endpoints_is_flushed() -> None:
    assert stale_flushes({VIP: frozenset({"10.1.0.2"})}, {}) == [Flush("UDP", "10.0.0.10", 53)]
    assert stale_flushes({VIP: frozenset()}, {}) == []


def test_unchanged_state_flushes_nothing() -> None:
    state = {VIP: frozenset({"10.1.0.2"})}
    assert stale_flushes(state, dict(state)) == []


def test_flush_args_and_deleted_count() -> None:
    calls: list[list[str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        err = "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n"
        return subprocess.CompletedProcess(cmd, 0, "", err)

    flushed = Conntrack(run=run).flush(
        [Flush("UDP", "10.0.0.10", 53, "10.1.0.3"), Flush("UDP", "", 30053)]
    )
    assert flushed == 4
    assert calls == [
        ["conntrack", "-D", "-p", "udp", "--orig-dst", "10.0.0.10", "--orig-port-dst", "53",
         "--dst-nat", "10.1.0.3"],
        ["conntrack", "-D", "-p", "udp", "--orig-port-dst", "30053"],
    ]  # fmt: skip


def test_flush_survives_a_missing_tool() -> None:
    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(cmd[0])

    assert Conntrack(run=run).flush([Flush("UDP", "10.0.0.10", 53)]) == 0
