"""The one interface between the mode-neutral proxy and each mode's package (iptables, nftables,
ipvs): what the sync engine (proxier.py), the daemon and its debug views (debug.py) ask of a
backend. Declared here, where it is consumed; each mode's backend.py implements it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry

from net.proxy.conntrack import ConntrackEntry
from net.proxy.model import ClusterState, ProxyConfig, ServiceKey
from net.proxy.views import Explanation, TraceResult


class Unsupported(RuntimeError):
    """The host lacks what the chosen mode needs; the message is one line for the user."""


@dataclass(frozen=True)
class Traits:
    """What the daemon needs to know of a mode besides its methods."""

    mode: str
    """`iptables`, `nftables` or `ipvs` (--proxy-mode)."""
    name: str
    """What /debug/rules reports as the backend: iptables' `nft` or `legacy`, or `netlink`."""
    full_sync_period: float | None = None
    """Seconds between periodic full syncs; None: every sync period."""
    partial_syncs: bool = False
    """The periodic sync of every sync period is a partial one (upstream's nftables pacing)."""
    localhost_nodeports: bool = False
    """The mode can serve NodePorts on 127.0.0.1 (upstream: iptables mode only)."""
    size_unit: str = "lines"
    """What a sync's size counts (`net rules`' column): `lines` of input, or `ops`."""
    text_kind: str = "restore input"
    """What a sync's text is (`net rules --with-text`)."""


class Sent(Protocol):
    """What one sync sent to the kernel, or tried to: its entry in the history of syncs."""

    @property
    def changed(self) -> tuple[ServiceKey, ...]:
        """Services added, updated or removed."""
        ...

    @property
    def removed_chains(self) -> tuple[str, ...]: ...

    @property
    def size(self) -> int:
        """Lines of the restore input, or ops of the batch."""
        ...

    def text(self) -> str:
        """The input as a person reads it (rendered after the timed part of the sync)."""
        ...


class SyncError(Exception):
    """The kernel refused a sync (the backend has logged why): the message is one line for the
    history; `attempted` is what was sent. What the kernel holds is what it held before, or
    something the full sync owed after a failure rewrites."""

    def __init__(self, message: str, attempted: Sent | None = None) -> None:
        super().__init__(message)
        self.attempted = attempted


class ProxyBackend(Protocol):
    """One proxy mode, made once at start-up (net.proxy.modes) and used by one sync at a time.
    Cleaning up is each mode package's cleanup module, not a method: `--cleanup` removes what
    any mode left, whichever mode is configured (net.proxy.cleanup; upstream's CleanupLeftovers
    is likewise a function per mode)."""

    @property
    def traits(self) -> Traits: ...

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Add the mode's own metrics (upstream's names) beside the common ones."""
        ...

    def sync(
        self,
        state: ClusterState,
        config: ProxyConfig,
        *,
        full: bool,
        changed: Collection[ServiceKey],
    ) -> Sent:
        """Build the desired state from the model (every Service when `full`, else only the
        `changed` ones against what the kernel holds) and apply it, in one transaction where
        the kernel allows it. Blocking (a worker thread runs it); raises SyncError when the
        kernel refused it (other exceptions are bugs or broken tools, also failed syncs)."""
        ...

    def settle(self, *, ok: bool, full: bool) -> None:
        """After a sync, on the thread that feeds events: when `ok`, what it built is what the
        kernel holds; else forget it (a full sync follows). Counts the mode's metrics."""
        ...

    def rule_count(self) -> int:
        """Rules the kernel holds of ours (as last applied)."""
        ...

    def trace(
        self, *, src: str, dst: str, port: int, proto: str, local_addresses: Sequence[str]
    ) -> TraceResult | None:
        """`net trace` over the applied rules; None before any were applied."""
        ...

    def explain(
        self,
        state: ClusterState,
        key: ServiceKey,
        *,
        config: ProxyConfig,
        conntrack: Sequence[ConntrackEntry],
    ) -> Explanation | None:
        """`net explain` of Service `key` of `state` as the applied rules serve it; None
        before any were applied."""
        ...

    def close(self) -> None:
        """Release sockets; the rules stay in the kernel."""
        ...
