"""cri.channel: endpoint parsing and channel options (pure; no sockets opened)."""

from __future__ import annotations

import os

import pytest

from cri.channel import MAX_MESSAGE_BYTES, channel_options, grpc_target


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("unix:///run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock"),
        ("unix:/run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock"),
        ("/run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock"),
    ],
)
def test_grpc_target(endpoint: str, target: str) -> None:
    assert grpc_target(endpoint) == target


def test_relative_path_is_made_absolute() -> None:
    assert grpc_target("cri.sock") == "unix://" + os.path.join(os.getcwd(), "cri.sock")


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:1234", "npipe:////./pipe/x", "unix://", ""])
def test_rejected_endpoints(endpoint: str) -> None:
    with pytest.raises(ValueError, match="CRI endpoint"):
        grpc_target(endpoint)


def test_channel_options() -> None:
    options = dict(channel_options(0.1, 2.0))
    assert options["grpc.max_receive_message_length"] == MAX_MESSAGE_BYTES == 16 * 1024 * 1024
    assert options["grpc.max_send_message_length"] == MAX_MESSAGE_BYTES
    assert options["grpc.initial_reconnect_backoff_ms"] == 100
    assert options["grpc.max_reconnect_backoff_ms"] == 2000
    assert options["grpc.use_local_subchannel_pool"] == 1
