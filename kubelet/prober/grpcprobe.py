"""The grpc probe: grpc.health.v1.Health/Check over plaintext HTTP/2, messages encoded by hand.
It must not need generated stubs, use a proxy, or keep the channel after the probe.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from kubelet.prober.httpprobe import user_agent
from kubelet.prober.results import Outcome, Result

CHECK = "/grpc.health.v1.Health/Check"
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return value, pos


def encode_request(service: str) -> bytes:
    """HealthCheckRequest{service = 1 (string)}; the empty string is left out as proto3 does."""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw if raw else b""


def decode_status(data: bytes) -> int:
    """HealthCheckResponse.status (field 1, enum); unknown fields are skipped; 0 when absent."""
    pos, status = 0, 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if field == 1:
                status = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos > len(data):
        raise ValueError("truncated message")
    return status


def _rpc_failure(e: grpc.aio.AioRpcError, target: str, seconds: float) -> Outcome:
    code = e.code()
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return Outcome(
            Result.FAILURE,
            "this server does not implement the grpc health protocol "
            f"(grpc.health.v1.Health): {e.details()}",
        )
    if code is grpc.StatusCode.UNAVAILABLE:
        return Outcome(
            Result.FAILURE,
            f"timeout: failed to connect service {target!r} within {seconds:g}s: {e.details()}",
        )
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return Outcome(Result.FAILURE, f"timeout: health rpc did not complete within {seconds:g}s")
    return Outcome(Result.FAILURE, f"error: health rpc probe failed: {code.name}: {e.details()}")


async def probe_grpc(host: str, port: int, service: str, seconds: float) -> Outcome:
    """SERVING is success; any other status or error is a failure."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = [("grpc.enable_http_proxy", 0), ("grpc.primary_user_agent", user_agent())]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        check: Any = channel.unary_unary(CHECK)
        try:
            reply = await check(encode_request(service), timeout=seconds)
        except grpc.aio.AioRpcError as e:
            return _rpc_failure(e, target, seconds)
    try:
        status = decode_status(bytes(reply))
    except ValueError as e:
        return Outcome(Result.FAILURE, f"error: health rpc probe failed: bad response: {e}")
    if status != 1:
        name = STATUS_NAMES.get(status, str(status))
        return Outcome(Result.FAILURE, f'service unhealthy (responded with "{name}")')
    return Outcome(Result.SUCCESS)
