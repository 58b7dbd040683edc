"""The CNI plugin executable: reads CNI_* and stdin, forwards the request to the agent's socket.
Standard library only and no netlink: the running agent does the work (fast exec, ~tens of ms)."""

from __future__ import annotations

import _socket
import json
import os
import sys
from collections.abc import Mapping

from net.cni import protocol
from net.cni.protocol import CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

TIMEOUT = 110.0
"""Seconds to wait for the agent; below containerd's default CNI call budget."""


def _exchange(path: str, message: bytes, timeout: float) -> Any:
    # _socket, not socket: the socket module imports enum and selectors (ms on every exec).
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise CniError(
                protocol.E_TRY_AGAIN_LATER,
                "pykubelet network agent is not running",
                f"{path}: {e.strerror}",
            ) from None
        sock.sendall(message)
        sock.shutdown(_socket.SHUT_WR)
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    return protocol.decode_message(b"".join(chunks))


def forward(request: protocol.Request, timeout: float = TIMEOUT) -> protocol.Json | None:
    """Send the request to the agent named by the config's `socket`; its result or CniError."""
    path = request.config.get("socket")
    if not isinstance(path, str) or not path:
        raise CniError(protocol.E_INVALID_CONFIG, "invalid network config", "socket missing")
    try:
        reply = _exchange(path, protocol.encode_message(request.to_json()), timeout)
    except TimeoutError:
        raise CniError(
            protocol.E_TRY_AGAIN_LATER, "pykubelet network agent timed out", path
        ) from None
    except OSError as e:
        raise CniError(
            protocol.E_IO, "talking to the pykubelet network agent failed", str(e)
        ) from None
    if not isinstance(reply, dict):
        raise CniError(protocol.E_DECODE, "malformed reply from agent")
    if not reply.get("ok"):
        raise CniError.from_json(reply.get("error") or {})
    result = reply.get("result")
    return result if isinstance(result, dict) else None


def run(env: Mapping[str, str], stdin: BinaryIO, stdout: TextIO) -> int:
    """One invocation: 0 with the result (if any) on stdout, or 1 with CNI error JSON."""
    version = protocol.SUPPORTED_VERSIONS[0]
    try:
        request = protocol.parse_request(env, stdin.read(protocol.MAX_MESSAGE + 1))
        version = request.cni_version
        if request.command == "VERSION":
            result: protocol.Json | None = protocol.version_result()
        else:
            result = forward(request)
    except CniError as e:
        json.dump(e.to_json(version), stdout)
        stdout.write("\n")
        return 1
    if result is not None:
        json.dump(result, stdout)
        stdout.write("\n")
    return 0


def main() -> int:
    return run(os.environ, sys.stdin.buffer, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
