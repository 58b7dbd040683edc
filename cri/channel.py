"""grpc.aio channels to the runtime unix socket: endpoint parsing, options, renewal on restart.
Transport plumbing only, used by cri.client; it must not make RPCs or translate errors itself.
"""

from __future__ import annotations

import asyncio
import os

import grpc
import grpc.aio

__all__ = ["MAX_MESSAGE_BYTES", "Connection", "channel_options", "grpc_target"]

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message sent or accepted (upstream kubelet uses the same 16 MiB)."""


def grpc_target(endpoint: str) -> str:
    """Turn "unix:///path", "unix:/path" or a bare path into a grpc target; reject other schemes."""
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
    elif endpoint.startswith("unix:"):
        path = endpoint[len("unix:") :]
    elif "://" in endpoint:
        raise ValueError(f"CRI endpoint {endpoint!r}: only unix sockets are supported")
    else:
        path = endpoint
    if not path:
        raise ValueError(f"CRI endpoint {endpoint!r}: empty socket path")
    return "unix://" + os.path.abspath(path)


def channel_options(backoff_initial: float, backoff_max: float) -> list[tuple[str, int]]:
    """Channel arguments: 16 MiB messages, a short reconnect back-off, a private subchannel."""
    initial_ms = max(1, int(backoff_initial * 1000))
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", initial_ms),
        ("grpc.min_reconnect_backoff_ms", initial_ms),
        ("grpc.max_reconnect_backoff_ms", max(initial_ms, int(backoff_max * 1000))),
        # A renewed channel must not inherit the old one's back-off through a shared subchannel.
        ("grpc.use_local_subchannel_pool", 1),
    ]


class Connection:
    """One channel to one target, replaced by a fresh channel when it sits in reconnect back-off.

    grpc keeps a failed channel in TRANSIENT_FAILURE until its back-off expires and fails calls
    fast meanwhile, so a call made just after the runtime came back would still fail. For a local
    unix socket an immediate reconnect costs nothing, so `channel()` swaps such a channel for a
    new one; calls made while the runtime is down still fail fast.
    """

    def __init__(self, target: str, options: list[tuple[str, int]]) -> None:
        self.target = target
        self._options = options
        self._channel = grpc.aio.insecure_channel(target, options=options)
        self._closing: set[asyncio.Task[None]] = set()
        self.renewals = 0
        """How many times the channel was replaced (for logs and tests)."""

    def channel(self) -> grpc.aio.Channel:
        """The channel to use for the next call (renewed if it is in back-off)."""
        state = self._channel.get_state(try_to_connect=False)
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            old = self._channel
            self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            self.renewals += 1
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return self._channel

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
