"""A certificate's files in the cert dir, laid out as upstream's certificate store:
<prefix>-<timestamp>.pem (certificate and key) and a <prefix>-current.pem symlink, for the
prefixes kubelet-client and kubelet-server. Reads and writes files only.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

log = logging.getLogger(__name__)
SERVER = "kubelet-server"
CLIENT = "kubelet-client"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----\n?", re.S)


class StoreError(ValueError):
    """A stored pair that cannot be used: names the file and the cause."""


@dataclass(frozen=True)
class Pair:
    """A certificate (the first of its chain) with its private key, as stored in `path`."""

    cert: x509.Certificate
    key: PrivateKeyTypes
    path: Path

    @property
    def not_before(self) -> datetime.datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> datetime.datetime:
        return self.cert.not_valid_after_utc


def parse_pair(data: bytes, path: Path) -> Pair:
    """Certificates and one private key from PEM blocks in any order; the key must match."""
    certs: list[x509.Certificate] = []
    key: PrivateKeyTypes | None = None
    try:
        for m in _PEM_BLOCK.finditer(data):
            block, kind = m.group(0), m.group(1)
            if kind == b"CERTIFICATE":
                certs.append(x509.load_pem_x509_certificate(block))
            elif kind.endswith(b"PRIVATE KEY") and key is None:
                key = serialization.load_pem_private_key(block, password=None)
    except ValueError as e:
        raise StoreError(f"{path}: unreadable PEM: {e}") from e
    if not certs or key is None:
        raise StoreError(f"{path}: needs a CERTIFICATE and a PRIVATE KEY block")
    if not matches(certs[0], key):
        raise StoreError(f"{path}: the private key does not match the certificate")
    return Pair(certs[0], key, path)


def matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    return bool(
        cert.public_key().public_bytes(pem, spki) == key.public_key().public_bytes(pem, spki)
    )


class CertStore:
    """Reads the current pair and saves new ones (a new file, then the symlink swapped with one
    rename, so a reader sees the old pair or the new one, never half of one)."""

    def __init__(self, directory: Path, prefix: str = SERVER) -> None:
        self.directory = directory
        self.prefix = prefix

    @property
    def current_path(self) -> Path:
        return self.directory / f"{self.prefix}-current.pem"

    def load(self) -> Pair | None:
        """The current pair; None when there is none yet or it cannot be used (logged)."""
        path = self.current_path.resolve()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("%s certificate %s unreadable: %s", self.prefix, path, e)
            return None
        try:
            return parse_pair(data, path)
        except StoreError as e:
            log.warning("%s certificate ignored: %s", self.prefix, e)
            return None

    def save(self, cert_pem: bytes, key_pem: bytes, now: datetime.datetime) -> Pair:
        """Write <prefix>-<YYYY-MM-DD-HH-MM-SS>.pem (mode 0600) and point the symlink at it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = now.strftime("%Y-%m-%d-%H-%M-%S")
        target = self.directory / f"{self.prefix}-{stamp}.pem"
        data = cert_pem.rstrip(b"\n") + b"\n" + key_pem
        pair = parse_pair(data, target)
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(target)
        link_tmp = self.current_path.with_name(self.current_path.name + ".tmp")
        link_tmp.unlink(missing_ok=True)
        link_tmp.symlink_to(target)
        link_tmp.replace(self.current_path)
        return pair
