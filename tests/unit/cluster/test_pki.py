"""Certificates made for the local cluster say who they are and chain to the right CA."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster import pki


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_write_pki_makes_every_file_and_keeps_existing(tmp_path: Path) -> None:
    plan = pki.PKIPlan(
        server_dns=("kubernetes", "localhost"),
        server_ips=("127.0.0.1", "10.0.0.1"),
        clients=(*pki.CONTROL_PLANE_CLIENTS, pki.node_identity("n1")),
    )
    pki.write_pki(tmp_path, plan)
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("server-ca", "client-ca", "apiserver", "admin", "node-n1", "kube-proxy"):
        assert {f"{stem}.crt", f"{stem}.key"} <= names
    assert {"sa.key", "sa.pub"} <= names
    assert (tmp_path / "admin.key").stat().st_mode & 0o777 == 0o600
    before = (tmp_path / "apiserver.crt").read_bytes()
    pki.write_pki(tmp_path, plan)
    assert (tmp_path / "apiserver.crt").read_bytes() == before


def test_node_cert_names_node_and_group(tmp_path: Path) -> None:
    pki.write_pki(tmp_path, pki.PKIPlan((), (), (pki.node_identity("worker-1"),)))
    cert = _load(tmp_path / "node-worker-1.crt")
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:worker-1"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.issuer == _load(tmp_path / "client-ca.crt").subject


def test_serving_cert_has_sans_and_server_ca(tmp_path: Path) -> None:
    pki.write_pki(tmp_path, pki.PKIPlan(("kubernetes.default.svc",), ("127.0.0.1",)))
    cert = _load(tmp_path / "apiserver.crt")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kubernetes.default.svc"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.issuer == _load(tmp_path / "server-ca.crt").subject
    cert.verify_directly_issued_by(_load(tmp_path / "server-ca.crt"))
