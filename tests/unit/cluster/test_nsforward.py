"""The forwarder's listening side without a netns: an address that need not exist yet."""

from __future__ import annotations

import sys

from cluster import nsforward


def test_command_lines() -> None:
    assert nsforward.forward_command("/run/netns/x", [1, 2]) == [
        sys.executable,
        "-m",
        "cluster.nsforward",
        "--netns",
        "/run/netns/x",
        "--port",
        "1",
        "--port",
        "2",
    ]
    assert nsforward.forward_command(None, [6443], address="10.88.0.1")[3:] == [
        "--address",
        "10.88.0.1",
        "--port",
        "6443",
    ]


def test_listen_here_on_an_address_not_yet_on_this_host() -> None:
    (s,) = nsforward.listen_here("198.51.100.231", [0])  # TEST-NET-2: on no interface here
    try:
        assert s.getsockname()[0] == "198.51.100.231"
    finally:
        s.close()
