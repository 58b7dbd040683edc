"""The :10250 TLS setup: the serving certificate (configured, or self-signed at first start into the
cert dir) and the SSL context that asks for client certificates. No HTTP, no authorization.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SELF_SIGNED_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ServingFiles:
    cert: Path
    key: Path


def self_signed(node: str, ips: tuple[str, ...]) -> tuple[bytes, bytes]:
    """A self-signed serving cert (PEM cert, PEM key) for the node's name and IPs."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node}@{int(now.timestamp())}")])
    sans: list[x509.GeneralName] = [x509.DNSName(node)]
    for ip in ips:
        sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SELF_SIGNED_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def serving_files(
    *, cert_file: str, key_file: str, cert_dir: Path, node: str, ips: tuple[str, ...]
) -> ServingFiles:
    """The configured pair, else <cert_dir>/kubelet.crt/.key (upstream names), made if missing."""
    if cert_file and key_file:
        return ServingFiles(Path(cert_file), Path(key_file))
    files = ServingFiles(cert_dir / "kubelet.crt", cert_dir / "kubelet.key")
    if not (files.cert.exists() and files.key.exists()):
        cert_dir.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed(node, ips)
        _write(files.key, key, 0o600)
        _write(files.cert, cert, 0o644)
    return files


def server_context(files: ServingFiles, client_ca_file: str) -> ssl.SSLContext:
    """TLS 1.2+; asks for (does not require) a client certificate, checked against the client CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.cert, files.key)
    if client_ca_file:
        ctx.load_verify_locations(cafile=client_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class SwappableTLS:
    """A server SSLContext whose certificate can change while serving (a renewed CSR-issued
    pair): each handshake is handed the newest pair's context. Until the first pair is set,
    handshakes fail, as upstream's kubelet fails them with "no serving certificate available"."""

    def __init__(self, client_ca_file: str) -> None:
        self._client_ca = client_ca_file
        self._current: ssl.SSLContext | None = None
        self.context = self._base()
        self.context.sni_callback = self._pick

    def _base(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self._client_ca:
            ctx.load_verify_locations(cafile=self._client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    @property
    def ready(self) -> bool:
        return self._current is not None

    def load(self, path: Path) -> None:
        """Serve the certificate and key in `path` (one PEM file) from the next handshake on."""
        ctx = self._base()
        ctx.load_cert_chain(path)
        self._current = ctx

    def _pick(self, sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        current = self._current
        if current is None:
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        sock.context = current
        return None
