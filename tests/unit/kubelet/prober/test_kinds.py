"""Each probe kind against a real local server on 127.0.0.1 (http, https, tcp, grpc) or a
fake ExecSync."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from cluster import pki
from cri import api
from cri.errors import error_for
from kubelet.pods.model import ContainerID, ContainerPort
from kubelet.prober.execprobe import probe_exec
from kubelet.prober.grpcprobe import decode_status, encode_request, probe_grpc
from kubelet.prober.results import Result
from kubelet.prober.runner import Runner, Target
from kubelet.prober.spec import Kind, parse_probe
from kubelet.prober.tcpprobe import probe_tcp


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _reply(self, code: int, body: bytes = b"", location: str = "") -> None:
        self.send_response(code)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        assert isinstance(self.server, ThreadingHTTPServer)
        port = self.server.server_port
        routes: dict[str, tuple[int, bytes, str]] = {
            "/ok": (200, b"fine", ""),
            "/bad": (503, b"down", ""),
            "/same": (302, b"", "/ok"),
            "/same-to-bad": (301, b"", "/bad"),
            "/other": (302, b"elsewhere", f"http://localhost:{port}/ok"),
            "/loop": (302, b"", "/loop"),
        }
        if self.path == "/slow":
            time.sleep(1.5)
            self._reply(200)
        elif self.path == "/headers":
            ok = self.headers.get("X-Test") == "yes" and self.headers.get(
                "User-Agent", ""
            ).startswith("kube-probe/")
            self._reply(200 if ok else 400)
        else:
            code, body, location = routes.get(self.path, (404, b"", ""))
            self._reply(code, body, location)


def _serve(tls_dir: Path | None = None) -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    if tls_dir is not None:
        ca = pki.make_ca("test-ca")
        leaf = pki.issue(ca, common_name="pod", server=True, ip_addresses=("127.0.0.1",))
        (tls_dir / "c.pem").write_bytes(leaf.cert_pem)
        (tls_dir / "k.pem").write_bytes(leaf.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_dir / "c.pem", tls_dir / "k.pem")
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def http_port() -> Iterator[int]:
    yield from _serve()


@pytest.fixture
def https_port(tmp_path: Path) -> Iterator[int]:
    yield from _serve(tmp_path)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def _http(port: int, path: str, **extra: Any) -> tuple[Result, str]:
    raw: dict[str, Any] = {"httpGet": {"port": "web", "path": path, **extra}, "timeoutSeconds": 1}
    runner = Runner(_NoExec())
    try:
        out = await runner.run(
            parse_probe(Kind.READINESS, raw),
            Target(ContainerID("c"), "127.0.0.1", (ContainerPort(port, name="web"),)),
        )
    finally:
        await runner.close()
    return out.result, out.detail


class _NoExec:
    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout_seconds: int = 0,
        deadline: float | None = None,
    ) -> api.ExecSyncResponse:
        raise AssertionError("no exec expected")


async def test_http_success_failure_and_timeout(http_port: int) -> None:
    assert (await _http(http_port, "/ok"))[0] is Result.SUCCESS
    result, detail = await _http(http_port, "/bad")
    assert (result, detail) == (Result.FAILURE, "HTTP probe failed with statuscode: 503")
    result, detail = await _http(http_port, "/slow")
    assert result is Result.FAILURE
    assert "deadline exceeded" in detail


async def test_http_headers_and_user_agent(http_port: int) -> None:
    assert (await _http(http_port, "/headers"))[0] is Result.FAILURE
    headers = [{"name": "X-Test", "value": "yes"}]
    assert (await _http(http_port, "/headers", httpHeaders=headers))[0] is Result.SUCCESS


async def test_http_redirects(http_port: int) -> None:
    assert (await _http(http_port, "/same"))[0] is Result.SUCCESS
    assert (await _http(http_port, "/same-to-bad"))[0] is Result.FAILURE
    result, detail = await _http(http_port, "/other")
    assert result is Result.WARNING
    assert "Probe terminated redirects" in detail
    result, detail = await _http(http_port, "/loop")
    assert result is Result.FAILURE
    assert "redirects" in detail


async def test_http_closed_port_fails() -> None:
    result, _ = await _http(_closed_port(), "/ok")
    assert result is Result.FAILURE


async def test_https_without_certificate_checks(https_port: int) -> None:
    assert (await _http(https_port, "/ok", scheme="HTTPS"))[0] is Result.SUCCESS


async def test_tcp() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert (await probe_tcp("127.0.0.1", port, 1)).result is Result.SUCCESS
    out = await probe_tcp("127.0.0.1", _closed_port(), 1)
    assert out.result is Result.FAILURE
    assert out.detail.startswith("dial tcp 127.0.0.1:")


# ---- grpc --------------------------------------------------------------------------------------


def test_health_messages_by_hand() -> None:
    assert encode_request("") == b""
    assert encode_request("svc") == b"\x0a\x03svc"
    assert decode_status(b"\x08\x01") == 1
    assert decode_status(b"") == 0
    assert decode_status(b"\x12\x02hi\x08\x02") == 2  # an unknown field is skipped


def _health_handler(statuses: dict[str, int]) -> grpc.GenericRpcHandler:
    async def check(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        service = request[2:].decode() if request else ""
        if service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08" + bytes([statuses[service]])

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(check)},
    )


async def test_grpc_health() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_health_handler({"": 1, "sick": 2})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert (await probe_grpc("127.0.0.1", port, "", 1)).result is Result.SUCCESS
        out = await probe_grpc("127.0.0.1", port, "sick", 1)
        assert (out.result, out.detail) == (
            Result.FAILURE,
            'service unhealthy (responded with "NOT_SERVING")',
        )
        assert (await probe_grpc("127.0.0.1", port, "gone", 1)).result is Result.FAILURE
    finally:
        await server.stop(None)
    out = await probe_grpc("127.0.0.1", _closed_port(), "", 1)
    assert out.result is Result.FAILURE


async def test_grpc_server_without_health_service() -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        out = await probe_grpc("127.0.0.1", port, "", 1)
    finally:
        await server.stop(None)
    assert out.result is Result.FAILURE
    assert "does not implement the grpc health protocol" in out.detail


# ---- exec --------------------------------------------------------------------------------------


class _FakeExec:
    def __init__(self, reply: api.ExecSyncResponse | Exception, delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.calls: list[tuple[str, list[str], int]] = []

    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout_seconds: int = 0,
        deadline: float | None = None,
    ) -> api.ExecSyncResponse:
        self.calls.append((container_id, list(cmd), timeout_seconds))
        await asyncio.sleep(self.delay)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


async def test_exec_exit_codes_and_output() -> None:
    ok = _FakeExec(api.ExecSyncResponse(exit_code=0, stdout=b"hi"))
    assert (await probe_exec(ok, "c1", ["cat", "/x"], 3)).result is Result.SUCCESS
    assert ok.calls == [("c1", ["cat", "/x"], 3)]
    bad = _FakeExec(api.ExecSyncResponse(exit_code=1, stderr=b"cat: /x: No such file"))
    out = await probe_exec(bad, "c1", ["cat", "/x"], 1)
    assert (out.result, out.detail) == (Result.FAILURE, "cat: /x: No such file")


async def test_exec_timeout_is_a_failure_and_other_errors_unknown() -> None:
    err = error_for(grpc.StatusCode.DEADLINE_EXCEEDED, method="ExecSync", message="timeout")
    out = await probe_exec(_FakeExec(err), "c1", ["sleep", "9"], 1)
    assert out.result is Result.FAILURE
    assert "timed out" in out.detail
    gone = error_for(grpc.StatusCode.NOT_FOUND, method="ExecSync", message="no such container")
    assert (await probe_exec(_FakeExec(gone), "c1", ["true"], 1)).result is Result.UNKNOWN


async def test_exec_hanging_runtime_call_is_cut_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubelet.prober import execprobe

    monkeypatch.setattr(execprobe, "DEADLINE_MARGIN", 0.0)
    hang = _FakeExec(api.ExecSyncResponse(exit_code=0), delay=30)
    started = time.monotonic()
    out = await probe_exec(hang, "c1", ["sleep", "9"], 1)
    assert out.result is Result.FAILURE
    assert time.monotonic() - started < 3
