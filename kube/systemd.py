"""systemd's service notification protocol for both agents: READY=1, STATUS=, STOPPING=1 and
WATCHDOG=1 datagrams to $NOTIFY_SOCKET (abstract '@' sockets too), and the watchdog loop that
pings only while the agent's health checks pass (upstream's SystemdWatchdog). Stdlib only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIN_WATCHDOG_SECONDS = 1.0
"""Upstream refuses a watchdog timeout at or below one second (minimalNotifyInterval)."""
NOTIFY_RETRIES = (1.0,)
"""Pause before each retry of a failed WATCHDOG=1 send (upstream: two tries, 1 s apart)."""

HealthCheck = Callable[[], tuple[bool, str]]
"""(healthy, why not): one named check the watchdog runs before each ping."""


class WatchdogConfigError(ValueError):
    """$WATCHDOG_USEC or $WATCHDOG_PID cannot be used."""


def notify_address(env: Mapping[str, str]) -> str | None:
    """$NOTIFY_SOCKET as an AF_UNIX address ('@name' is the abstract socket '\\0name'); None
    when not started by systemd with Type=notify."""
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return None
    return "\0" + raw[1:] if raw.startswith("@") else raw


def send(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification (lines such as "READY=1\\nSTATUS=..."). False when there is no
    $NOTIFY_SOCKET; OSError when the socket refuses the datagram."""
    address = notify_address(os.environ if env is None else env)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        sock.connect(address)
        sock.send(state.encode())
    return True


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC, as upstream; None when the
    watchdog is off or meant for another process ($WATCHDOG_PID)."""
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        raise WatchdogConfigError(f"WATCHDOG_USEC={raw!r} is not a number") from None
    if usec <= 0:
        raise WatchdogConfigError(f"WATCHDOG_USEC={raw!r} must be positive")
    owner = env.get("WATCHDOG_PID", "")
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            raise WatchdogConfigError(f"WATCHDOG_PID={owner!r} is not a number") from None
    seconds = usec / 1e6
    if seconds <= MIN_WATCHDOG_SECONDS:
        raise WatchdogConfigError(f"watchdog timeout {seconds:g}s is too small (over 1s needed)")
    return seconds / 2


def failed_check(checks: Sequence[tuple[str, HealthCheck]]) -> str | None:
    """The first failing check as "checker NAME failed: WHY", or None when all pass."""
    for name, check in checks:
        try:
            ok, why = check()
        except Exception as e:  # a check that crashes is a failed check
            ok, why = False, f"{type(e).__name__}: {e}"
        if not ok:
            return f"checker {name} failed: {why}"
    return None


@dataclass
class Notifier:
    """One agent's notifications; every call is a no-op outside a Type=notify unit."""

    env: Mapping[str, str] | None = None
    name: str = "pykubelet"

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self.env is None else self.env

    @property
    def enabled(self) -> bool:
        return notify_address(self.environ) is not None

    def notify(self, state: str) -> bool:
        """Send `state`; a failure is logged, never raised (systemd is an observer)."""
        try:
            return send(state, self.environ)
        except OSError as e:
            log.warning("%s: sd_notify %r failed: %s", self.name, state.split("\n")[0], e)
            return False

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self, status: str = "") -> None:
        self.notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        """WATCHDOG=1; raises OSError when the socket refuses it (the loop retries)."""
        return send("WATCHDOG=1", self.environ)

    def watchdog_interval(self) -> float | None:
        return watchdog_interval(self.environ, os.getpid())


async def watchdog_loop(
    checks: Sequence[tuple[str, HealthCheck]],
    *,
    interval: float,
    ping: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Every `interval`: run the checks; when they pass, send WATCHDOG=1 (`ping`, raising
    OSError on a failed send), retrying once; when one fails, skip this round so systemd
    restarts an agent that stays unhealthy. A hung event loop sends nothing at all."""
    log.info("starting systemd watchdog with interval %.1fs", interval)
    while True:
        problem = failed_check(checks)
        if problem is not None:
            log.error(
                "not notifying the watchdog this round, the agent is not healthy: %s", problem
            )
        else:
            await _ping(ping, sleep)
        await sleep(interval)


async def _ping(ping: Callable[[], bool], sleep: Callable[[float], Awaitable[None]]) -> None:
    for pause in (*NOTIFY_RETRIES, None):
        try:
            if not ping():
                log.error("watchdog notification not possible: NOTIFY_SOCKET is unset")
            return
        except OSError as e:
            if pause is None:
                log.error("notifying the systemd watchdog failed: %s", e)
                return
            log.debug("notifying the systemd watchdog failed, retrying: %s", e)
            await sleep(pause)
