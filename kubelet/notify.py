"""The node agent's side of systemd's notify protocol: READY=1 once its servers listen (upstream
notifies after starting the kubelet and its servers, without waiting for registration), STATUS=
at milestones, and the watchdog fed by the agent's own health checks. No agent logic here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from kube import supervise, systemd

log = logging.getLogger(__name__)


def start(
    notifier: systemd.Notifier,
    tasks: set[asyncio.Task[None]],
    *,
    node: str,
    listening: Sequence[asyncio.Event],
    registered: asyncio.Event,
) -> None:
    """READY/STATUS as the agent comes up, and the watchdog (when WATCHDOG_USEC is set) while
    every loop in `tasks` runs; a hung event loop sends nothing, so systemd restarts it."""
    interval = watchdog_interval(notifier)
    task = asyncio.create_task(
        announce(notifier, node=node, listening=listening, registered=registered),
        name="systemd-notify",
    )
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    if interval is None:
        return

    def loops() -> tuple[bool, str]:
        dead = sorted(t.get_name() for t in tasks if t.done())
        return not dead, f"loops not running: {', '.join(dead)}"

    checks: list[tuple[str, systemd.HealthCheck]] = [("ping", lambda: (True, "")), ("loops", loops)]
    supervise.spawn(
        tasks,
        "systemd-watchdog",
        lambda: systemd.watchdog_loop(checks, interval=interval, ping=notifier.watchdog),
    )


def watchdog_interval(notifier: systemd.Notifier) -> float | None:
    """Seconds between watchdog pings; a bad WATCHDOG_USEC stops the agent, as upstream's
    NewHealthChecker error does."""
    try:
        return notifier.watchdog_interval()
    except systemd.WatchdogConfigError as e:
        raise SystemExit(f"pykubelet run: configure watchdog: {e}") from e


async def announce(
    notifier: systemd.Notifier,
    *,
    node: str,
    listening: Sequence[asyncio.Event],
    registered: asyncio.Event,
) -> None:
    """READY=1 when every server listens; a STATUS line when the Node is registered."""
    notifier.status(f"Starting node {node}: waiting for the servers to listen")
    for event in listening:
        await event.wait()
    notifier.ready(f"Running as node {node}; registering with the apiserver")
    log.info("told systemd the node agent is ready" if notifier.enabled else "not under systemd")
    await registered.wait()
    notifier.status(f"Running as node {node}; registered")
