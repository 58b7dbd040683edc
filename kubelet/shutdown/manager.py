"""The node shutdown manager (upstream's nodeshutdown, Linux): holds logind's delay inhibitor,
and on PrepareForShutdown(true) marks the node shutting down (Ready False, admission refused),
stops pods group by group as planner.plan says, then releases the lock. Pod kills go through
the callable the agent hands in; the D-Bus work through logind.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Gauge

from kubelet.metrics import REGISTRY
from kubelet.pods.admission import Rejection
from kubelet.shutdown import planner
from kubelet.shutdown.dbus import Connection, DBusError, system_bus_address
from kubelet.shutdown.logind import LOGIND_CONF_DIR, InhibitLock, Logind
from kubelet.shutdown.planner import Json, PriorityGrace, Step

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
"""Pause before watching again after the bus connection ended (dbusReconnectPeriod)."""
DELAY_CHECKS = (0.1, 0.2, 0.4, 0.8)
"""Pauses between reads of InhibitDelayMaxUSec after a reload (upstream: 5 tries from 100 ms)."""
STATE_FILE = "graceful_node_shutdown_state"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"

START_TIME = Gauge(
    "kubelet_graceful_shutdown_start_time_seconds",
    "Last graceful shutdown start time since unix epoch in seconds",
    registry=REGISTRY,
)
END_TIME = Gauge(
    "kubelet_graceful_shutdown_end_time_seconds",
    "Last graceful shutdown end time since unix epoch in seconds",
    registry=REGISTRY,
)

KillPod = Callable[[Json, int], Awaitable[None]]
"""Stop a pod with this grace period (seconds), ending it Failed/Terminated; returns once
nothing of it runs and its status is written."""


class ShutdownSetupError(Exception):
    """logind cannot give the node the delay it needs (InhibitDelayMaxSec too short)."""


@dataclass
class Hooks:
    """What the manager asks of the rest of the agent."""

    active_pods: Callable[[], Sequence[Json]]
    kill: KillPod
    sync_node_status: Callable[[], Awaitable[None]]
    """Write the node's status now (Ready turns False with "node is shutting down")."""
    record: Callable[[str], None]
    """A Normal "Shutdown" event on the Node with this message."""


class ShutdownManager:
    """One node's graceful shutdown; run() is a supervised task."""

    def __init__(
        self,
        periods: Sequence[PriorityGrace],
        hooks: Hooks,
        *,
        state_dir: Path,
        bus_address: str | None = None,
        logind_conf_dir: Path = LOGIND_CONF_DIR,
    ) -> None:
        self.periods = list(periods)
        self.hooks = hooks
        self.state_file = state_dir / STATE_FILE
        self.bus_address = bus_address
        self.logind_conf_dir = logind_conf_dir
        self.shutting_down = False
        self.lock = InhibitLock(-1)
        self.processed = asyncio.Event()
        """Set each time a shutdown was processed and the lock released (tests wait on it)."""
        load_metrics(self.state_file)

    def admit(self, pod: Json) -> Rejection | None:
        """Upstream's Admit: every new pod is refused while the node shuts down."""
        del pod
        if self.shutting_down:
            return Rejection(planner.NOT_ADMITTED_REASON, planner.NOT_ADMITTED_MESSAGE)
        return None

    def ready_error(self) -> str | None:
        """The shutdown manager's part of the Ready condition (upstream's ShutdownStatus)."""
        return planner.NOT_READY_MESSAGE if self.shutting_down else None

    async def run(self) -> None:
        """Watch for shutdowns forever; a lost or failed connection is retried after 1 s."""
        log.info(
            "node shutdown manager: groups %s",
            ", ".join(f"priority>={p.priority}: {p.seconds}s" for p in self.periods),
        )
        while True:
            try:
                await self._watch()
            except (DBusError, OSError, ShutdownSetupError) as e:
                log.error("unable to watch the node for shutdown events: %s", e)
            await asyncio.sleep(RECONNECT_SECONDS)
            log.info("restarting the watch for node shutdown events")

    async def _watch(self) -> None:
        conn = await Connection.open(self.bus_address or system_bus_address())
        try:
            logind = Logind(conn, self.logind_conf_dir)
            await self._ensure_delay(logind)
            await self._acquire(logind)
            await logind.monitor()
            while True:
                event = await logind.next_event()
                if event is None:
                    log.error("the watch for node shutdown events ended (bus connection lost)")
                    return
                await self._on_event(logind, event)
        finally:
            conn.close()

    async def _ensure_delay(self, logind: Logind) -> None:
        """InhibitDelayMaxSec must cover the whole grace period: raise it when it does not."""
        requested = planner.period_requested(self.periods)
        current = await logind.inhibit_delay()
        if requested <= current:
            return
        path = logind.write_override(requested)
        log.info(
            "raised logind's InhibitDelayMaxSec to %ds in %s; reloading logind", requested, path
        )
        await logind.reload_conf()
        for pause in (*DELAY_CHECKS, None):
            current = await logind.inhibit_delay()
            if requested <= current or pause is None:
                break
            await asyncio.sleep(pause)
        if requested > current:
            raise ShutdownSetupError(
                f"node shutdown manager was timed out waiting for logind InhibitDelayMaxSec to "
                f"update to {requested}s (ShutdownGracePeriod), current value is {current:g}s"
            )

    async def _acquire(self, logind: Logind) -> None:
        lock = await logind.inhibit()
        self.lock.release()
        self.lock = lock
        log.info("holding a logind delay inhibitor lock for shutdown (fd %d)", lock.fd)

    async def _on_event(self, logind: Logind, shutting_down: bool) -> None:
        log.info(
            "shutdown manager detected %s", "a shutdown" if shutting_down else "a cancellation"
        )
        self.hooks.record(planner.EVENT_SHUTDOWN if shutting_down else planner.EVENT_CANCELLED)
        self.shutting_down = shutting_down
        if not shutting_down:
            with contextlib.suppress(DBusError):
                await self._acquire(logind)
            return
        sync = asyncio.ensure_future(self.hooks.sync_node_status())
        try:
            await self.process()
        finally:
            with contextlib.suppress(Exception):
                await sync

    async def process(self) -> None:
        """Stop the active pods group by group, then release the inhibitor lock."""
        start = time.time()
        _store_state(self.state_file, start, None)
        START_TIME.set(int(start))
        END_TIME.set(0)
        try:
            for step in planner.plan(self.periods, self.hooks.active_pods()):
                await self._run_step(step)
        finally:
            self.lock.release()
            end = time.time()
            _store_state(self.state_file, start, end)
            END_TIME.set(int(end))
            log.info("shutdown manager completed processing shutdown event, node will shutdown")
            self.processed.set()

    async def _run_step(self, step: Step) -> None:
        log.info(
            "stopping %d pod(s) of priority >= %d within %ds: %s",
            len(step.kills),
            step.priority,
            step.seconds,
            ", ".join(f"{k.ref} (grace {k.grace}s)" for k in step.kills),
        )
        kills = [asyncio.create_task(self._kill(k)) for k in step.kills]
        done, pending = await asyncio.wait(kills, timeout=step.seconds)
        if pending:
            log.info(
                "shutdown manager pod killing time out: %d pod(s) of priority >= %d still stopping",
                len(pending),
                step.priority,
            )
        del done

    async def _kill(self, kill: planner.Kill) -> None:
        """One pod, waited for as upstream's killPodNow: grace + grace/2, at least 10 s."""
        timeout = max(10, kill.grace + kill.grace // 2)
        try:
            await asyncio.wait_for(self.hooks.kill(kill.pod, kill.grace), timeout)
        except TimeoutError:
            log.warning("pod %s not stopped within %ds of the node shutdown", kill.ref, timeout)
        except Exception:
            log.exception("stopping pod %s for the node shutdown failed", kill.ref)
        else:
            log.info("shutdown manager finished killing pod %s", kill.ref)


def _go_time(t: float | None) -> str:
    if t is None:
        return GO_ZERO_TIME
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat().replace("+00:00", "Z")


def _store_state(path: Path, start: float, end: float | None) -> None:
    """graceful_node_shutdown_state in the root dir, as upstream's localStorage writes it."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        tmp.write_text(json.dumps({"startTime": _go_time(start), "endTime": _go_time(end)}))
        tmp.replace(path)
    except OSError as e:
        log.error("failed to store graceful shutdown state in %s: %s", path, e)


def load_metrics(path: Path) -> None:
    """The gauges from the last shutdown's state file (they survive the reboot, as upstream)."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:
        log.error("failed to load graceful shutdown state from %s: %s", path, e)
        return
    for key, gauge in (("startTime", START_TIME), ("endTime", END_TIME)):
        value = state.get(key) if isinstance(state, dict) else None
        if isinstance(value, str) and value != GO_ZERO_TIME:
            with contextlib.suppress(ValueError):
                gauge.set(int(datetime.datetime.fromisoformat(value).timestamp()))
