"""Our D-Bus client and logind glue against a real dbus-daemon (a private bus in a temp dir)
with the FAKE stand-in logind of tests/fakes/logind.py: Properties.Get, Inhibit and its
descriptor, PrepareForShutdown, the InhibitDelayMaxSec drop-in and reload, errors, bus loss.
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubelet.shutdown.dbus import Connection, DBusError, socket_address, system_bus_address
from kubelet.shutdown.logind import INHIBIT, Logind
from tests.fakes.logind import StandInLogind, dbus_daemon, private_bus

pytestmark = pytest.mark.skipif(
    dbus_daemon() is None, reason="dbus-daemon is not installed (Debian package dbus-daemon)"
)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    with private_bus(tmp_path) as address:
        yield address


@pytest.fixture
def logind(bus: str, tmp_path: Path) -> Iterator[StandInLogind]:
    with StandInLogind(bus, conf_dir=tmp_path / "logind.conf.d") as fake:
        yield fake


@pytest.fixture
async def conn(bus: str) -> AsyncIterator[Connection]:
    c = await Connection.open(bus)
    try:
        yield c
    finally:
        c.close()


def test_addresses() -> None:
    assert socket_address("unix:path=/run/dbus/system_bus_socket") == "/run/dbus/system_bus_socket"
    assert socket_address("unix:path=/tmp/a%20b,guid=0123") == "/tmp/a b"
    assert socket_address("unix:abstract=/tmp/dbus-x") == "\0/tmp/dbus-x"
    assert socket_address("tcp:host=localhost,port=1;unix:path=/a") == "/a"
    with pytest.raises(DBusError, match="no unix path"):
        socket_address("tcp:host=localhost,port=1")
    assert system_bus_address({}) == "unix:path=/run/dbus/system_bus_socket"
    assert system_bus_address({"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"


async def test_hello_gives_a_unique_name(conn: Connection) -> None:
    assert conn.unique_name.startswith(":")


async def test_no_bus_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DBusError, match="NoServer"):
        await Connection.open(f"unix:path={tmp_path}/none")


async def test_inhibit_delay_and_lock(conn: Connection, logind: StandInLogind) -> None:
    glue = Logind(conn)
    assert await glue.inhibit_delay() == 5.0
    lock = await glue.inhibit()
    assert lock.held
    [held] = logind.held()
    assert (held.what, held.who, held.why, held.mode) == INHIBIT
    lock.release()
    assert not lock.held
    await asyncio.sleep(0.05)
    assert logind.held() == []


async def test_prepare_for_shutdown_signals(conn: Connection, logind: StandInLogind) -> None:
    glue = Logind(conn)
    await glue.monitor()
    logind.prepare_for_shutdown(True)
    assert await asyncio.wait_for(glue.next_event(), 5) is True
    logind.prepare_for_shutdown(False)
    assert await asyncio.wait_for(glue.next_event(), 5) is False


async def test_override_and_reload(conn: Connection, logind: StandInLogind, tmp_path: Path) -> None:
    glue = Logind(conn, tmp_path / "logind.conf.d")
    path = glue.write_override(30)
    assert path == tmp_path / "logind.conf.d" / "99-kubelet.conf"
    assert "InhibitDelayMaxSec=30" in path.read_text()
    await glue.reload_conf()
    assert logind.reloads == 1
    assert await glue.inhibit_delay() == 30.0


async def test_an_error_reply_names_the_error(conn: Connection, logind: StandInLogind) -> None:
    with pytest.raises(DBusError, match="UnknownMethod"):
        await conn.call("org.freedesktop.login1", "/org/freedesktop/login1", "x.Y", "Nope")
    with pytest.raises(DBusError, match="ServiceUnknown"):
        await conn.call("org.example.Missing", "/", "x.Y", "Nope")
    del logind


async def test_losing_the_bus_ends_the_watch(tmp_path: Path) -> None:
    with private_bus(tmp_path) as address:
        conn = await Connection.open(address)
        glue = Logind(conn)
    assert await asyncio.wait_for(glue.next_event(), 5) is None
    with pytest.raises(DBusError, match="Disconnected"):
        await glue.inhibit_delay()


async def test_the_lock_descriptor_is_close_on_exec(
    conn: Connection, logind: StandInLogind
) -> None:
    lock = await Logind(conn).inhibit()
    try:
        assert fcntl.fcntl(lock.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        lock.release()
    del logind
