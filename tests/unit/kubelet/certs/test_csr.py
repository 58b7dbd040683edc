"""The CSR flow shared by the client and serving certificates: the request as upstream shapes it
(subject, SANs, key, usages, the bootstrap CSR's digested name), the object created, a named CSR
reused on a retry, the watch until issued, and every way it can end without a certificate.
"""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from kubelet.certs import bootstrap, csr
from kubelet.certs.csr import CSRError, Request, obtain

from .signer import CA, T0, FakeSigner, sign

NOW = T0 + datetime.timedelta(minutes=1)


def _subject(pem: bytes) -> dict[x509.ObjectIdentifier, object]:
    return {a.oid: a.value for a in x509.load_pem_x509_csr(pem).subject}


def test_client_csr_is_upstreams_node_client_template() -> None:
    key_pem = csr.new_key_pem()
    req = bootstrap.client_request("node-1", key_pem, named=False)
    assert _subject(req.csr_pem) == {
        NameOID.COMMON_NAME: "system:node:node-1",
        NameOID.ORGANIZATION_NAME: "system:nodes",
    }
    parsed = x509.load_pem_x509_csr(req.csr_pem)
    assert parsed.is_signature_valid
    assert not list(parsed.extensions)  # no SANs on a client certificate
    assert csr.matches_public(parsed, key_pem)
    assert key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.key_size == 256  # type: ignore[union-attr]
    assert req.signer == "kubernetes.io/kube-apiserver-client-kubelet"
    assert req.usages == ("digital signature", "client auth")
    body = csr.csr_body(req)
    assert body["metadata"] == {"generateName": "csr-"}
    assert body["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert body["spec"]["usages"] == ["digital signature", "client auth"]
    assert base64.b64decode(body["spec"]["request"]) == req.csr_pem


def test_serving_csr_carries_the_sans() -> None:
    pem = csr.node_csr(csr.new_key_pem(), "node-1", ("node-1",), ("10.0.0.5", "fd00::5"))
    sans = x509.load_pem_x509_csr(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.DNSName) == ["node-1"]
    ips = sans.value.get_values_for_type(x509.IPAddress)
    assert [str(ip) for ip in ips] == ["10.0.0.5", "fd00::5"]
    with pytest.raises(ValueError):
        csr.node_csr(csr.new_key_pem(), "n", (), ("not-an-ip",))


def test_bootstrap_csr_name_is_upstreams_digest() -> None:
    """node-csr-<base64url(SHA-512/256(b64(spki)|b64(CN)|b64(O)|b64(usage)|...))>: the same key
    always names the same CSR, another key another one."""
    key_pem = csr.new_key_pem()
    req = bootstrap.client_request("node-1", key_pem, named=True)
    spki = (
        serialization.load_pem_private_key(key_pem, password=None)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    parts = [spki, b"system:node:node-1", b"system:nodes", b"digital signature", b"client auth"]
    digest = hashlib.new("sha512_256", b"".join(b64(p) + b"|" for p in parts)).digest()
    assert req.name == f"node-csr-{b64(digest).decode()}"
    assert csr.csr_body(req)["metadata"] == {"name": req.name}
    assert bootstrap.client_request("node-1", key_pem, named=True).name == req.name
    assert bootstrap.client_request("node-1", csr.new_key_pem(), named=True).name != req.name


@pytest.mark.parametrize("kind", ["Denied", "Failed"])
def test_denied_or_failed_csr_is_an_error_naming_it(kind: str) -> None:
    obj = {
        "metadata": {"name": "csr-x"},
        "status": {
            "conditions": [{"type": kind, "status": "True", "reason": "R", "message": "no way"}]
        },
    }
    with pytest.raises(CSRError, match=f"csr-x was {kind.lower()}: R, no way"):
        csr.issued_certificate(obj)


def test_issued_certificate_waits_then_decodes() -> None:
    approved = {"status": {"conditions": [{"type": "Approved", "status": "True"}]}}
    assert csr.issued_certificate(approved) is None
    pem = b"-----BEGIN CERTIFICATE-----\n"
    assert csr.issued_certificate({"status": {"certificate": base64.b64encode(pem)}}) == pem
    with pytest.raises(CSRError, match=r"bad status\.certificate"):
        csr.issued_certificate({"status": {"certificate": "!!"}})


def _client_request(named: bool = False) -> Request:
    return bootstrap.client_request("node-1", csr.new_key_pem(), named=named)


async def test_obtain_watches_until_the_certificate_is_issued() -> None:
    signer = FakeSigner(after=3)
    req = _client_request()
    cert_pem = await obtain(signer, req, wait=5, now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.issuer == x509.load_pem_x509_certificate(CA.cert_pem).subject
    assert (signer.creates, signer.watches, signer.events) == (1, 1, 3)
    assert list(signer.csrs) == ["csr-1"]


async def test_a_dropped_watch_reads_the_csr_and_watches_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csr, "REWATCH_PAUSE", 0.0)
    signer = FakeSigner(drop_watches=2)
    await obtain(signer, _client_request(), wait=30, now=NOW)
    assert signer.watches == 3 and signer.gets == 2


async def test_denied_and_timeout_are_errors() -> None:
    with pytest.raises(CSRError, match="csr-1 was denied: Nope, no way"):
        await obtain(FakeSigner(deny=True), _client_request(), wait=5, now=NOW)
    with pytest.raises(CSRError, match="csr-1 not issued within 0s; approve it"):
        await obtain(
            FakeSigner(never=True), _client_request(), wait=0.01, now=NOW, hint="; approve it"
        )


async def test_a_certificate_for_another_key_or_already_expired_is_refused() -> None:
    signer = FakeSigner(hours=1)
    req = _client_request()
    late = T0 + datetime.timedelta(hours=2)
    with pytest.raises(CSRError, match="expired at 2026-11-23T13:00:00"):
        await obtain(signer, req, wait=5, now=late)
    other = Request(req.csr_pem, csr.new_key_pem(), req.signer, req.usages)
    with pytest.raises(CSRError, match="issued for another key"):
        await obtain(FakeSigner(), other, wait=5, now=NOW)


async def test_a_named_csr_that_exists_is_reused_when_it_is_ours() -> None:
    """A bootstrap retry (same kept key) finds its CSR from before and waits on it."""
    signer = FakeSigner(after=10**9)
    req = _client_request(named=True)
    await csr.submit(signer, req)
    signer.after = 0
    assert await obtain(signer, req, wait=5, now=NOW)
    assert list(signer.csrs) == [req.name] and signer.creates == 2
    stranger = Request(
        _client_request().csr_pem, csr.new_key_pem(), req.signer, req.usages, req.name
    )
    with pytest.raises(CSRError, match="exists for another key or subject"):
        await csr.submit(signer, stranger)


def test_check_issued_accepts_a_matching_chain() -> None:
    req = _client_request()
    csr.check_issued("csr-1", sign(req.csr_pem), req.key_pem, NOW)
    junk = b"-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(CSRError, match="unreadable certificate"):
        csr.check_issued("csr-1", junk, req.key_pem, NOW)
