"""The cert-dir store of both certificates, laid out as upstream's: <prefix>-<timestamp>.pem
(certificate and key, mode 0600) and the <prefix>-current.pem symlink swapped in one rename.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from kubelet.certs import bootstrap, csr
from kubelet.certs.store import CLIENT, SERVER, CertStore, StoreError, parse_pair

from .signer import T0, sign


def _pair_pems(hours: float = 10.0) -> tuple[bytes, bytes]:
    key_pem = csr.new_key_pem()
    return sign(
        bootstrap.client_request("node-1", key_pem, named=False).csr_pem, hours=hours
    ), key_pem


@pytest.mark.parametrize("prefix", [CLIENT, SERVER])
def test_store_writes_timestamped_file_and_swaps_the_symlink(tmp_path: Path, prefix: str) -> None:
    store = CertStore(tmp_path / "pki", prefix)
    assert store.load() is None
    first = store.save(*_pair_pems(), T0)
    assert first.path.name == f"{prefix}-2026-11-23-12-00-00.pem"
    assert first.path.stat().st_mode & 0o777 == 0o600
    assert store.current_path.name == f"{prefix}-current.pem"
    assert store.current_path.is_symlink() and store.current_path.resolve() == first.path
    second = store.save(*_pair_pems(), T0 + datetime.timedelta(seconds=1))
    loaded = store.load()
    assert loaded is not None and loaded.cert == second.cert
    assert store.current_path.resolve() == second.path
    assert first.path.exists()  # older pairs stay, as upstream keeps them
    assert not list((tmp_path / "pki").glob("*.tmp"))
    text = second.path.read_bytes()
    assert text.index(b"BEGIN CERTIFICATE") < text.index(b"BEGIN EC PRIVATE KEY")


def test_store_refuses_a_key_of_another_certificate(tmp_path: Path) -> None:
    cert, _ = _pair_pems()
    _, other_key = _pair_pems()
    with pytest.raises(StoreError, match="does not match"):
        CertStore(tmp_path).save(cert, other_key, T0)
    assert not CertStore(tmp_path).current_path.exists()
    with pytest.raises(StoreError, match="needs a CERTIFICATE"):
        parse_pair(b"junk", tmp_path / "x.pem")


def test_store_ignores_an_unusable_current_file(tmp_path: Path) -> None:
    store = CertStore(tmp_path, CLIENT)
    store.current_path.write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    assert store.load() is None
