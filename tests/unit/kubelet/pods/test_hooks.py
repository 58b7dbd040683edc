"""Lifecycle hooks against a fake ExecSync and a tiny local HTTP server: success, the upstream
failure messages, port names, redirects, sleep, and preStop's grace period and event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest

from cri import api
from cri.errors import CRIError
from kubelet import events as ev
from kubelet.pods.decode import pod_from_api
from kubelet.pods.hooks import FAILED_PRE_STOP, HookError, HooksManager, http_url, resolve_port
from kubelet.pods.model import Container, Pod

Json = dict[str, Any]
POD: Json = {
    "metadata": {"name": "web", "namespace": "ns", "uid": "u-1"},
    "spec": {"containers": [{"name": "c"}]},
    "status": {"podIP": "127.0.0.1"},
}


class FakeExec:
    def __init__(self, code: int = 0, stdout: bytes = b"", stderr: bytes = b"") -> None:
        self.resp = api.ExecSyncResponse(exit_code=code, stdout=stdout, stderr=stderr)
        self.calls: list[tuple[str, list[str], float | None]] = []
        self.delay = 0.0
        self.error: CRIError | None = None

    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout_seconds: int = 0,
        deadline: float | None = None,
    ) -> api.ExecSyncResponse:
        self.calls.append((container_id, list(cmd), deadline))
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.resp


def hooks(rt: FakeExec | None = None) -> tuple[HooksManager, list[ev.PodEvent], list[float]]:
    recorded: list[ev.PodEvent] = []
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    return HooksManager(rt or FakeExec(), record=recorded.append, sleep=sleep), recorded, slept


def with_hook(kind: str, handler: Json, **extra: Any) -> Json:
    return {"name": "c", "lifecycle": {kind: handler}, **extra}


def typed(pod: Json, container: Json) -> tuple[Pod, Container]:
    """The pod decoded with `container` (given an image) as its only container."""
    spec = {**pod["spec"], "containers": [{"image": "img:1", **container}]}
    decoded = pod_from_api({**pod, "spec": spec})
    return decoded, decoded.containers[0]


async def post_start(m: HooksManager, pod: Json, container: Json, cid: str) -> str | None:
    return await m.post_start(*typed(pod, container), cid)


async def pre_stop(m: HooksManager, pod: Json, container: Json, cid: str, grace: int) -> None:
    await m.pre_stop(*typed(pod, container), cid, grace)


async def test_no_hook_does_nothing() -> None:
    rt = FakeExec()
    m, _, _ = hooks(rt)
    assert await post_start(m, POD, {"name": "c"}, "cid") is None
    await pre_stop(m, POD, {"name": "c"}, "cid", 30)
    assert rt.calls == []


async def test_exec_post_start_success_and_failure() -> None:
    rt = FakeExec()
    m, _, _ = hooks(rt)
    c = with_hook("postStart", {"exec": {"command": ["sh", "-c", "exit 0"]}})
    assert await post_start(m, POD, c, "cid") is None
    assert rt.calls == [("cid", ["sh", "-c", "exit 0"], None)]
    rt.resp = api.ExecSyncResponse(exit_code=3, stdout=b"out ", stderr=b"err")
    msg = await post_start(m, POD, c, "cid")
    assert msg == (
        'Exec lifecycle hook ([sh -c exit 0]) for Container "c" in Pod "web_ns(u-1)" failed - '
        "error: command 'sh -c exit 0' exited with 3: err, message: \"out err\""
    )


async def test_exec_runtime_error_is_a_failure() -> None:
    rt = FakeExec()
    rt.error = CRIError(code=grpc.StatusCode.NOT_FOUND, method="ExecSync", message="no such")
    m, _, _ = hooks(rt)
    msg = await post_start(m, POD, with_hook("postStart", {"exec": {"command": ["x"]}}), "cid")
    assert msg is not None and "error: no such" in msg


async def test_sleep_hook() -> None:
    m, _, slept = hooks()
    assert await post_start(m, POD, with_hook("postStart", {"sleep": {"seconds": 3}}), "c") is None
    assert slept == [3.0]


def test_ports_and_urls() -> None:
    _, c = typed(POD, {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})
    assert resolve_port(81, c) == 81
    assert resolve_port("http", c) == 8080
    assert resolve_port("90", c) == 90
    with pytest.raises(HookError, match="port web not found"):
        resolve_port("web", c)
    with pytest.raises(HookError, match="invalid port number"):
        resolve_port(0, c)
    assert http_url({"port": "http", "path": "x?a=1"}, c, "10.0.0.1") == (
        "http://10.0.0.1:8080/x?a=1"
    )
    assert http_url({"port": 443, "scheme": "HTTPS"}, c, "fd00::1") == "https://[fd00::1]:443/"


# ---- a tiny HTTP server ---------------------------------------------------------------------
class Server:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.requests.append(head)
        path = head.split(" ")[1]
        status, extra = "200 OK", ""
        if path.startswith("/fail"):
            status = "500 Internal Server Error"
        elif path.startswith("/moved"):
            status, extra = "302 Found", "Location: /done\r\n"
        elif path.startswith("/away"):
            status, extra = "302 Found", "Location: http://example.invalid/\r\n"
        writer.write(f"HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    s.port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield s


def http_hook(path: str, **extra: Any) -> Json:
    return {"httpGet": {"port": "web", "path": path, **extra}}


async def test_http_hook_to_pod_ip_with_port_name_and_headers(server: Server) -> None:
    m, _, _ = hooks()
    ports = [{"name": "web", "containerPort": server.port}]
    handler = http_hook("/hello", httpHeaders=[{"name": "X-Test", "value": "yes"}])
    c = with_hook("postStart", handler, ports=ports)
    assert await post_start(m, POD, c, "cid") is None
    head = server.requests[0]
    assert head.startswith("GET /hello HTTP/1.1")
    assert "X-Test: yes" in head or "x-test: yes" in head
    assert "kube-lifecycle/" in head


async def test_http_hook_failures_and_redirects(server: Server) -> None:
    m, _, _ = hooks()
    ports = [{"name": "web", "containerPort": server.port}]
    failing = with_hook("postStart", http_hook("/fail"), ports=ports)
    msg = await post_start(m, POD, failing, "cid")
    assert msg is not None
    assert msg.startswith('HTTP lifecycle hook (/fail) for Container "c" in Pod "web_ns(u-1)"')
    assert "500" in msg
    moved = with_hook("postStart", http_hook("/moved"), ports=ports)
    assert await post_start(m, POD, moved, "cid") is None
    assert server.requests[-1].startswith("GET /done ")
    away = with_hook("postStart", http_hook("/away"), ports=ports)
    assert await post_start(m, POD, away, "cid") is None  # a 3xx to elsewhere is not followed
    closed = with_hook("postStart", {"httpGet": {"port": 1, "host": "127.0.0.1"}})
    msg = await post_start(m, POD, closed, "cid")
    assert msg is not None and "failed - error: Get" in msg


async def test_http_hook_without_pod_ip_fails() -> None:
    m, _, _ = hooks()
    pod = {**POD, "status": {}}
    msg = await post_start(m, pod, with_hook("postStart", {"httpGet": {"port": 80}}), "cid")
    assert msg is not None and "failed to find networking container" in msg


async def test_pre_stop_failure_records_event() -> None:
    rt = FakeExec(code=1)
    m, recorded, _ = hooks(rt)
    await pre_stop(m, POD, with_hook("preStop", {"exec": {"command": ["false"]}}), "cid", 30)
    assert rt.calls == [("cid", ["false"], 30)]
    assert [(e.reason, e.message, e.field_path) for e in recorded] == [
        (FAILED_PRE_STOP, "PreStopHook failed", "spec.containers{c}")
    ]


async def test_pre_stop_is_cut_at_the_grace_period() -> None:
    rt = FakeExec()
    rt.delay = 5.0
    m, recorded, _ = hooks(rt)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await pre_stop(m, POD, with_hook("preStop", {"exec": {"command": ["sleep", "9"]}}), "cid", 1)
    assert loop.time() - t0 < 2.0
    assert recorded == []
