"""The pure parts of streaming (the replayed request, exec options) and log following with a
real file on disk: new lines, partial lines, the file replaced (rotation), the container ending."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from multidict import MultiDict

from kubelet.server import crilog, logs
from kubelet.server.streaming import forward_ports, request_head, stream_options
from kubelet.server.targets import HTTPError

T = "2024-05-01T10:00:00.000000001Z"


def test_request_head_replays_upgrade_headers_with_runtime_path() -> None:
    head = request_head(
        "POST",
        "/exec/abc",
        "127.0.0.1:3456",
        [
            (b"Host", b"node:10250"),
            (b"Authorization", b"Bearer x"),
            (b"Upgrade", b"SPDY/3.1"),
            (b"Connection", b"Upgrade"),
            (b"X-Stream-Protocol-Version", b"v4.channel.k8s.io"),
            (b"X-Forwarded-For", b"1.2.3.4"),
            (b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io"),
        ],
    )
    assert head == (
        b"POST /exec/abc HTTP/1.1\r\nHost: 127.0.0.1:3456\r\nUpgrade: SPDY/3.1\r\n"
        b"Connection: Upgrade\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
        b"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
    )


def test_stream_options_wire_and_user_names() -> None:
    q = MultiDict([("command", "sh"), ("command", "-c"), ("input", "1"), ("output", "1")])
    q.add("error", "1")
    q.add("tty", "1")
    opts = stream_options(q, need_command=True)
    assert opts.command == ("sh", "-c") and opts.stdin and opts.stdout and opts.tty
    assert not opts.stderr  # a tty merges stderr into stdout
    assert stream_options(MultiDict(stdout="true"), need_command=False).stdout


@pytest.mark.parametrize(
    "query",
    [
        MultiDict(command="ls"),
        MultiDict(output="1"),
        MultiDict(command="ls", output="maybe"),
    ],
)
def test_stream_options_refused(query: MultiDict[str]) -> None:
    with pytest.raises(HTTPError) as e:
        stream_options(query, need_command=True)
    assert e.value.status == 400


def test_forward_ports() -> None:
    assert forward_ports(MultiDict([("port", "80"), ("port", "8080")])) == [80, 8080]
    for bad in ("0", "70000", "x"):
        with pytest.raises(HTTPError):
            forward_ports(MultiDict(port=bad))


async def test_follow_partial_rotation_and_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(f"{T} stdout F one\n{T} stdout P tw".encode())
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    stream = logs.LogStream(crilog.LogOptions(follow=True), write)
    log = logs.LogFile(str(path))
    await stream.backlog(log.read())
    assert b"".join(out) == b"one\n"
    plan: list[Callable[[], None]] = [
        lambda: _append(path, f"o\n{T} stdout F -end\n"),
        lambda: _rotate(path, f"{T} stdout F three\n"),
        lambda: _append(path, f"{T} stderr F four\n"),
    ]
    steps = iter(plan)
    checks = 0

    async def exited() -> bool:
        nonlocal checks
        checks += 1
        step = next(steps, None)
        if step is None:
            return True
        step()
        return False

    monkeypatch.setattr(logs, "EXIT_CHECK_SECONDS", 0.0)
    await logs.follow(log, stream, exited, lambda: False)
    log.close()
    assert b"".join(out) == b"one\ntwo-end\nthree\nfour\n"


def _append(path: Path, text: str) -> None:
    with open(path, "ab") as f:
        f.write(text.encode())


def _rotate(path: Path, text: str) -> None:
    os.rename(path, str(path) + ".20240501-100000")
    path.write_bytes(text.encode())
