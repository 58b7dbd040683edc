"""FAKE, for tests only: a private dbus-daemon (config in a temp dir) and a stand-in for
systemd-logind (plus systemd's KillUnit) on it, written with jeepney, an independent D-Bus
implementation. It hands out real delay-inhibitor descriptors and emits PrepareForShutdown;
it is not logind. The real logind is exercised in the Vagrant VM test (`vagrant halt`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import select
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import HeaderFields

LOGIND, LOGIND_PATH = "org.freedesktop.login1", "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SYSTEMD, SYSTEMD_PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
PROPERTIES = "org.freedesktop.DBus.Properties"
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def dbus_daemon() -> str | None:
    return shutil.which("dbus-daemon")


@contextlib.contextmanager
def private_bus(directory: Path) -> Iterator[str]:
    """A dbus-daemon of our own on a socket in `directory`; yields its address."""
    binary = dbus_daemon()
    if binary is None:
        raise RuntimeError("dbus-daemon is not installed (Debian package dbus-daemon)")
    sock = directory / "system_bus_socket"
    config = directory / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=sock))
    proc = subprocess.Popen(
        [binary, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        if not address:
            raise RuntimeError(
                f"dbus-daemon did not start: {proc.stderr.read() if proc.stderr else ''}"
            )
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Inhibitor:
    what: str
    who: str
    why: str
    mode: str
    read_end: int
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class StandInLogind:
    """Serves org.freedesktop.login1 and org.freedesktop.systemd1 on `address` from a thread."""

    address: str
    conf_dir: Path | None = None
    """Where KillUnit(systemd-logind.service, SIGHUP) reads InhibitDelayMaxSec drop-ins."""
    inhibit_delay_usec: int = 5_000_000
    inhibitors: list[Inhibitor] = field(default_factory=list)
    reloads: int = 0
    _outbox: queue.Queue[Any] = field(default_factory=queue.Queue)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _sent_fds: list[int] = field(default_factory=list)

    def __enter__(self) -> StandInLogind:
        self._thread = threading.Thread(target=self._serve, name="stand-in-logind", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stand-in logind did not get its bus names")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for inh in self.inhibitors:
            with contextlib.suppress(OSError):
                os.close(inh.read_end)

    def prepare_for_shutdown(self, active: bool) -> None:
        emitter = DBusAddress(LOGIND_PATH, interface=MANAGER)
        self._outbox.put(new_signal(emitter, "PrepareForShutdown", "b", (active,)))

    def held(self) -> list[Inhibitor]:
        """Inhibitors whose descriptor is still open somewhere (as logind's fifo tells)."""
        out = []
        for inh in self.inhibitors:
            if not inh.released.is_set():
                ready, _, _ = select.select([inh.read_end], [], [], 0)
                if ready:  # EOF: every copy of the write end is closed
                    inh.released.set()
                    continue
                out.append(inh)
        return out

    # ---- the serving thread ----------------------------------------------------------------
    def _serve(self) -> None:
        with open_dbus_connection(self.address, enable_fds=True) as conn:
            bus = message_bus
            for name in (LOGIND, SYSTEMD):
                conn.send_and_get_reply(bus.RequestName(name))
            self._ready.set()
            while not self._stop.is_set():
                while not self._outbox.empty():
                    conn.send(self._outbox.get())
                try:
                    msg = conn.receive(timeout=0.05)
                except TimeoutError:
                    continue
                if msg.header.message_type == MessageType.method_call:
                    conn.send(self._answer(msg))
                    for fd in self._sent_fds:  # the peer has its own copy now
                        os.close(fd)
                    self._sent_fds.clear()

    def _answer(self, msg: Any) -> Any:
        fields = msg.header.fields
        path, iface, member = (fields.get(k) for k in _FIELD_KEYS)
        wanted = (LOGIND_PATH, PROPERTIES, "Get", (MANAGER, "InhibitDelayMaxUSec"))
        if (path, iface, member, tuple(msg.body)) == wanted:
            return new_method_return(msg, "v", (("t", self.inhibit_delay_usec),))
        if path == LOGIND_PATH and iface == MANAGER and member == "Inhibit":
            return self._inhibit(msg)
        if path == SYSTEMD_PATH and member == "KillUnit":
            return self._kill_unit(msg)
        return new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"{member}?",))

    def _inhibit(self, msg: Any) -> Any:
        what, who, why, mode = msg.body
        read_end, write_end = os.pipe()
        self.inhibitors.append(Inhibitor(what, who, why, mode, read_end))
        self._sent_fds.append(write_end)
        return new_method_return(msg, "h", (write_end,))

    def _kill_unit(self, msg: Any) -> Any:
        unit, _, signal = msg.body
        if unit == "systemd-logind.service" and signal == 1 and self.conf_dir is not None:
            self.reloads += 1
            for conf in sorted(self.conf_dir.glob("*.conf")):
                found = re.search(r"^InhibitDelayMaxSec=(\d+)", conf.read_text(), re.M)
                if found:
                    self.inhibit_delay_usec = int(found.group(1)) * 1_000_000
        return new_method_return(msg)


_FIELD_KEYS = (HeaderFields.path, HeaderFields.interface, HeaderFields.member)
