"""logind and systemd over D-Bus for graceful shutdown, as upstream's nodeshutdown/systemd: the
delay inhibitor lock (a file descriptor held until the pods are stopped), InhibitDelayMaxUSec,
the PrepareForShutdown signal, and raising InhibitDelayMaxSec with a drop-in plus a reload.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from kubelet.shutdown import dbus_wire as wire
from kubelet.shutdown.dbus import Connection, DBusError
from kubelet.shutdown.planner import LOGIND_DROP_IN, logind_override

LOGIND, LOGIND_PATH = "org.freedesktop.login1", "/org/freedesktop/login1"
LOGIND_MANAGER = "org.freedesktop.login1.Manager"
SYSTEMD, SYSTEMD_PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
SYSTEMD_MANAGER = "org.freedesktop.systemd1.Manager"
PROPERTIES = "org.freedesktop.DBus.Properties"
LOGIND_CONF_DIR = Path("/etc/systemd/logind.conf.d")
INHIBIT = ("shutdown", "kubelet", "Kubelet needs time to handle node shutdown", "delay")
"""What, who, why and mode of upstream's inhibitor (`systemd-inhibit --list` shows them)."""
PREPARE_FOR_SHUTDOWN = "PrepareForShutdown"
SHUTDOWN_MATCH = (
    f"type='signal',interface='{LOGIND_MANAGER}',member='{PREPARE_FOR_SHUTDOWN}',"
    f"path='{LOGIND_PATH}'"
)
SIGHUP = 1


@dataclass
class InhibitLock:
    """The inhibitor: logind delays shutdown until this descriptor is closed."""

    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    @property
    def held(self) -> bool:
        return self.fd >= 0


class Logind:
    """logind's Manager (and systemd's, for the reload) on one bus connection."""

    def __init__(self, conn: Connection, conf_dir: Path = LOGIND_CONF_DIR) -> None:
        self.conn = conn
        self.conf_dir = conf_dir

    async def inhibit_delay(self) -> float:
        """InhibitDelayMaxUSec in seconds."""
        reply = await self.conn.call(
            LOGIND, LOGIND_PATH, PROPERTIES, "Get", "ss", (LOGIND_MANAGER, "InhibitDelayMaxUSec")
        )
        value = reply.body[0] if reply.body else None
        if not isinstance(value, wire.Variant) or value.signature != "t":
            raise DBusError(
                "org.freedesktop.DBus.Error.InvalidSignature",
                f"InhibitDelayMaxUSec from logind is not a uint64 as expected: {value!r}",
            )
        return int(value.value) / 1e6

    async def inhibit(self) -> InhibitLock:
        reply = await self.conn.call(
            LOGIND, LOGIND_PATH, LOGIND_MANAGER, "Inhibit", "ssss", INHIBIT
        )
        index = reply.body[0] if reply.body else None
        if not isinstance(index, int) or index >= len(reply.fds):
            reply.close_fds()
            raise DBusError(
                "org.freedesktop.DBus.Error.InvalidArgs",
                "failed creating systemd inhibitor: no file descriptor in logind's reply",
            )
        fd = reply.fds.pop(index)
        reply.close_fds()
        return InhibitLock(fd)

    def write_override(self, seconds: int) -> Path:
        """Write /etc/systemd/logind.conf.d/99-kubelet.conf with InhibitDelayMaxSec=seconds."""
        try:
            self.conf_dir.mkdir(parents=True, exist_ok=True)
            path = self.conf_dir / LOGIND_DROP_IN
            path.write_text(logind_override(seconds))
            path.chmod(0o644)
        except OSError as e:
            raise OSError(f"writing the logind override in {self.conf_dir} failed: {e}") from e
        return path

    async def reload_conf(self) -> None:
        """SIGHUP to systemd-logind through systemd (KillUnit), so it reads the drop-in."""
        await self.conn.call(
            SYSTEMD,
            SYSTEMD_PATH,
            SYSTEMD_MANAGER,
            "KillUnit",
            "ssi",
            ("systemd-logind.service", "all", SIGHUP),
        )

    async def monitor(self) -> None:
        """Subscribe to PrepareForShutdown; read them with next_event()."""
        await self.conn.add_match(SHUTDOWN_MATCH)

    async def next_event(self) -> bool | None:
        """The next PrepareForShutdown's argument (True: shutting down, False: cancelled);
        None once the connection is gone."""
        while True:
            msg = await self.conn.signals.get()
            if msg is None:
                return None
            if msg.member != PREPARE_FOR_SHUTDOWN or msg.interface != LOGIND_MANAGER:
                continue
            if msg.body and isinstance(msg.body[0], bool):
                return msg.body[0]
