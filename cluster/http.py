"""A small synchronous HTTPS client for the harness: readiness checks and bootstrap objects.
Uses client certificates from the cluster's pki dir; not the node agent's apiserver client.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    *,
    method: str = "GET",
    ca_file: Path | None = None,
    cert: tuple[Path, Path] | None = None,
    body: Any = None,
    timeout: float = 5.0,
) -> Response:
    """One HTTP(S) request; TLS verified against `ca_file` when given, else not verified."""
    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if ca_file is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        conn = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path or "/", body=data, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.read())
    finally:
        conn.close()
