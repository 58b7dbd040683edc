"""The one place that knows the proxy modes: --proxy-mode -> the mode package's backend, made once
at start-up. A mode's package is imported only when chosen (IPVS mode's pyroute2 costs ~0.2 s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from net.proxy.backend import ProxyBackend, Unsupported


def _iptables(proc: Path) -> ProxyBackend:
    from net.proxy.iptables.backend import open_backend

    return open_backend()


def _nftables(proc: Path) -> ProxyBackend:
    from net.proxy.nftables.backend import open_backend

    return open_backend()


def _ipvs(proc: Path) -> ProxyBackend:
    from net.proxy.ipvs.backend import open_backend

    return open_backend(proc)


BACKENDS: Mapping[str, Callable[[Path], ProxyBackend]] = {
    "iptables": _iptables,
    "ipvs": _ipvs,
    "nftables": _nftables,
}


def open_backend(mode: str, *, proc: Path = Path("/proc")) -> ProxyBackend:
    """The backend of `mode` on this host; Unsupported (one line) when the host cannot run it
    (IPVS mode on a kernel without IPVS, iptables mode without iptables-restore...)."""
    make = BACKENDS.get(mode)
    if make is None:
        raise Unsupported(f"proxy mode {mode!r}: expected one of {', '.join(sorted(BACKENDS))}")
    return make(proc)
