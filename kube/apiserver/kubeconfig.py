"""Reads a kubeconfig file into Credentials and an ssl.SSLContext for the apiserver client.
Reads files only; must not open connections (that is client.py's job) or write kubeconfigs.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Credentials:
    """Where the apiserver is and how to authenticate to it (one kubeconfig context)."""

    server: str
    """Base URL, e.g. https://127.0.0.1:6443."""
    ca_file: Path | None = None
    ca_data: bytes | None = None
    """PEM bundle of the CA(s) that signed the apiserver's certificate."""
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    token: str | None = None
    """Bearer token (from `token` or read from `tokenFile`)."""
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    source: Path | None = None
    """The kubeconfig this came from, for messages."""


def _named(doc: dict[str, Any], section: str, name: str, where: str) -> dict[str, Any]:
    singular = section[:-1]
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(singular)
            if not isinstance(body, dict):
                raise KubeconfigError(f'{where}: {singular} "{name}" has no "{singular}" map')
            return body
    raise KubeconfigError(f'{where}: {singular} "{name}" not found in "{section}"')


def _data(section: dict[str, Any], key: str, where: str) -> bytes | None:
    value = section.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KubeconfigError(f"{where}: {key} is not valid base64 ({exc})") from exc


def _file(section: dict[str, Any], key: str, base: Path, where: str) -> Path | None:
    value = section.get(key)
    if not value:
        return None
    p = Path(str(value)).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise KubeconfigError(f"{where}: {key} {str(p)!r} does not exist")
    return p


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KubeconfigError(f"{path}: cannot read kubeconfig ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{path}: not a kubeconfig (expected a YAML map)")
    return doc


def load_kubeconfig(path: Path | str, *, context: str | None = None) -> Credentials:
    """Credentials of `context` (default: current-context). Relative paths are file-relative."""
    path = Path(path)
    doc = _read(path)
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError(f"{path}: current-context is not set and no context was given")
    ctx = _named(doc, "contexts", str(name), f"{path}")
    where = f'{path}: context "{name}"'
    for key in ("cluster", "user"):
        if not ctx.get(key):
            raise KubeconfigError(f"{where}: {key} is missing")
    cluster = _named(doc, "clusters", str(ctx["cluster"]), str(path))
    user = _named(doc, "users", str(ctx["user"]), str(path))
    cwhere, uwhere = f'{path}: cluster "{ctx["cluster"]}"', f'{path}: user "{ctx["user"]}"'
    if not cluster.get("server"):
        raise KubeconfigError(f"{cwhere}: server is missing")
    base = path.parent
    creds = Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_file(cluster, "certificate-authority", base, cwhere),
        ca_data=_data(cluster, "certificate-authority-data", cwhere),
        client_cert_file=_file(user, "client-certificate", base, uwhere),
        client_key_file=_file(user, "client-key", base, uwhere),
        client_cert_data=_data(user, "client-certificate-data", uwhere),
        client_key_data=_data(user, "client-key-data", uwhere),
        token=_token(user, base, uwhere),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name") or None,
        source=path,
    )
    _check_pairs(creds, uwhere)
    return creds


def _token(user: dict[str, Any], base: Path, where: str) -> str | None:
    if user.get("token"):
        return str(user["token"])
    token_file = _file(user, "tokenFile", base, where)
    return token_file.read_text().strip() if token_file else None


def _check_pairs(creds: Credentials, where: str) -> None:
    has_cert = bool(creds.client_cert_file or creds.client_cert_data)
    has_key = bool(creds.client_key_file or creds.client_key_data)
    if has_cert and not has_key:
        raise KubeconfigError(f"{where}: client-key(-data) is missing (client-certificate is set)")
    if has_key and not has_cert:
        raise KubeconfigError(f"{where}: client-certificate(-data) is missing (client-key is set)")
    if not creds.server.startswith("https://") and (has_cert or creds.token):
        raise KubeconfigError(f"{where}: credentials must not be sent over {creds.server}")


def ssl_context(creds: Credentials) -> ssl.SSLContext:
    """A client TLS context: trust the kubeconfig's CA (or the system's), present the cert."""
    ctx = ssl.create_default_context(
        cafile=str(creds.ca_file) if creds.ca_file else None,
        cadata=creds.ca_data.decode() if creds.ca_data else None,
    )
    if creds.insecure_skip_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if creds.client_cert_file and creds.client_key_file:
        ctx.load_cert_chain(str(creds.client_cert_file), str(creds.client_key_file))
    elif creds.client_cert_data or creds.client_key_data:
        _load_chain_from_data(ctx, creds)
    return ctx


def _load_chain_from_data(ctx: ssl.SSLContext, creds: Credentials) -> None:
    """ssl only loads client keys from files: write them to a private temp dir, then remove it."""
    cert = creds.client_cert_data or (creds.client_cert_file or Path()).read_bytes()
    key = creds.client_key_data or (creds.client_key_file or Path()).read_bytes()
    with tempfile.TemporaryDirectory(prefix="pykubelet-tls-") as tmp:
        cert_path, key_path = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        for p, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(str(cert_path), str(key_path))
