"""The loopback forwarder into a netns: a client inside the netns reaches a server on the root
netns's 127.0.0.1 through it, and stopping it leaves nothing listening."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import process
from cluster.nsforward import forward_command


@pytest.fixture
def netns(root_required: None) -> Iterator[str]:
    name = f"pkfwd{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"echo:" + data)

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_client_in_netns_reaches_root_loopback(netns: str, tmp_path: Path) -> None:
    srv, port = _echo_server()
    daemon = process.Daemon("nsforward", tmp_path, tmp_path)
    try:
        process.start(daemon, forward_command(netns, [port]))

        def listening() -> bool:
            out = subprocess.run(
                ["nsenter", f"--net={netns}", "ss", "-Hltn", f"sport = :{port}"],
                capture_output=True,
                text=True,
            ).stdout
            return f"127.0.0.1:{port}" in out

        process.wait_ready(daemon, listening, timeout=10)
        script = (
            f"import socket,sys;s=socket.create_connection(('127.0.0.1',{port}),timeout=5);"
            "s.sendall(b'hi');s.shutdown(socket.SHUT_WR);sys.stdout.write(s.recv(100).decode())"
        )
        out = subprocess.run(
            ["nsenter", f"--net={netns}", "python3", "-c", script],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.stdout == "echo:hi", out.stderr
    finally:
        process.stop(daemon)
        srv.close()
    assert daemon.pid() is None


def test_bad_netns_is_a_clear_error(root_required: None, tmp_path: Path) -> None:
    r = subprocess.run(
        forward_command(str(tmp_path / "missing"), [1]), capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "cannot listen in" in r.stderr and "missing" in r.stderr
