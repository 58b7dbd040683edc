"""serverTLSBootstrap pieces: the CSR as upstream shapes it, CSR outcomes, the rotation deadline,
the cert-dir store (timestamped file, current symlink), the manager against a fake signer, and
the swappable TLS context (no certificate: handshakes fail; then the newest one is served)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from prometheus_client import generate_latest

from cluster import pki
from kube.apiserver import Resource
from kubelet.server.certstore import CertStore, StoreError, parse_pair
from kubelet.server.metrics import REGISTRY
from kubelet.server.servingcert import (
    SIGNER,
    CSRError,
    ServingCertManager,
    csr_body,
    issued_certificate,
    rotation_deadline,
    serving_csr,
)
from kubelet.server.tls import SwappableTLS

T0 = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
CA = pki.make_ca("test-signer")


def sign(csr_pem: bytes, *, hours: float = 10.0, start: datetime.datetime = T0) -> bytes:
    """What the kube-controller-manager's signer does: the CSR's subject and SANs, CA-signed."""
    csr = x509.load_pem_x509_csr(csr_pem)
    ca_cert = x509.load_pem_x509_certificate(CA.cert_pem)
    ca_key = serialization.load_pem_private_key(CA.key_pem, password=None)
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(hours=hours))
    )
    for ext in csr.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM)


# ---------------------------------------------------------------- the CSR


def test_csr_subject_sans_and_body() -> None:
    csr_pem, key_pem = serving_csr("node-1", ("node-1",), ("10.0.0.5", "fd00::5"))
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-1"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["node-1"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5", "fd00::5"]
    assert key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    body = csr_body(csr_pem)
    assert body["spec"]["signerName"] == SIGNER == "kubernetes.io/kubelet-serving"
    assert body["spec"]["usages"] == ["digital signature", "server auth"]
    assert base64.b64decode(body["spec"]["request"]) == csr_pem
    assert body["metadata"] == {"generateName": "csr-"}


def test_csr_refuses_a_bad_ip() -> None:
    with pytest.raises(ValueError):
        serving_csr("n", ("n",), ("not-an-ip",))


@pytest.mark.parametrize("kind", ["Denied", "Failed"])
def test_denied_or_failed_csr_is_an_error(kind: str) -> None:
    csr = {
        "metadata": {"name": "csr-x"},
        "status": {"conditions": [{"type": kind, "status": "True", "message": "no way"}]},
    }
    with pytest.raises(CSRError, match=f"csr-x was {kind.lower()}: no way"):
        issued_certificate(csr)


def test_issued_certificate_waits_then_decodes() -> None:
    approved = {"status": {"conditions": [{"type": "Approved", "status": "True"}]}}
    assert issued_certificate(approved) is None
    pem = b"-----BEGIN CERTIFICATE-----\n"
    done = {"status": {"certificate": base64.b64encode(pem).decode()}}
    assert issued_certificate(done) == pem
    with pytest.raises(CSRError, match=r"bad status\.certificate"):
        issued_certificate({"status": {"certificate": "!!"}})


@pytest.mark.parametrize(("rand", "fraction"), [(0.0, 0.7), (0.5, 0.8), (1.0, 0.9), (7.0, 0.9)])
def test_rotation_deadline_is_70_to_90_percent(rand: float, fraction: float) -> None:
    end = T0 + datetime.timedelta(hours=100)
    assert rotation_deadline(T0, end, rand) == T0 + datetime.timedelta(hours=100 * fraction)


# ---------------------------------------------------------------- the store


def _pair_pems(hours: float = 10.0) -> tuple[bytes, bytes]:
    csr_pem, key_pem = serving_csr("node-1", ("node-1",), ("10.0.0.5",))
    return sign(csr_pem, hours=hours), key_pem


def test_store_writes_timestamped_file_and_swaps_the_symlink(tmp_path: Path) -> None:
    store = CertStore(tmp_path / "pki")
    assert store.load() is None
    cert1, key1 = _pair_pems()
    first = store.save(cert1, key1, T0)
    assert first.path.name == "kubelet-server-2026-11-23-12-00-00.pem"
    assert first.path.stat().st_mode & 0o777 == 0o600
    assert store.current_path.is_symlink() and store.current_path.resolve() == first.path
    cert2, key2 = _pair_pems()
    second = store.save(cert2, key2, T0 + datetime.timedelta(seconds=1))
    loaded = store.load()
    assert loaded is not None and loaded.cert == second.cert
    assert first.path.exists()  # older pairs stay, as upstream keeps them
    assert not list((tmp_path / "pki").glob("*.tmp"))


def test_store_refuses_a_key_of_another_certificate(tmp_path: Path) -> None:
    cert, _ = _pair_pems()
    _, other_key = _pair_pems()
    with pytest.raises(StoreError, match="does not match"):
        CertStore(tmp_path).save(cert, other_key, T0)
    assert not CertStore(tmp_path).current_path.exists()
    with pytest.raises(StoreError, match="needs a CERTIFICATE"):
        parse_pair(b"junk", tmp_path / "x.pem")


def test_store_ignores_an_unusable_current_file(tmp_path: Path) -> None:
    store = CertStore(tmp_path)
    store.current_path.write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    assert store.load() is None


# ---------------------------------------------------------------- the manager


class FakeSigner:
    """The apiserver with CSRs that get approved and signed after `polls_before_issue` reads."""

    def __init__(
        self, *, hours: float = 10.0, deny: bool = False, polls: int = 1, start: Any = T0
    ) -> None:
        self.csrs: dict[str, dict[str, Any]] = {}
        self.hours, self.deny, self.polls, self.start = hours, deny, polls, start
        self.reads = 0

    async def create(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        assert resource.plural == "certificatesigningrequests"
        name = f"csr-{len(self.csrs) + 1}"
        self.csrs[name] = {**obj, "metadata": {"name": name}, "status": {}}
        return self.csrs[name]

    async def get(self, resource: Resource, name: str) -> dict[str, Any]:
        self.reads += 1
        csr = self.csrs[name]
        if self.reads >= self.polls:
            if self.deny:
                csr["status"] = {"conditions": [{"type": "Denied", "status": "True"}]}
            else:
                pem = sign(
                    base64.b64decode(csr["spec"]["request"]), hours=self.hours, start=self.start
                )
                csr["status"] = {"certificate": base64.b64encode(pem).decode()}
        return csr


def _manager(
    signer: FakeSigner, store: CertStore, served: list[Path], **kw: Any
) -> ServingCertManager:
    return ServingCertManager(
        signer,
        store,
        node="node-1",
        addresses=lambda: (("node-1",), ("10.0.0.5",)),
        on_cert=lambda pair: served.append(pair.path),
        poll=0.001,
        **kw,
    )


async def test_request_stores_and_reports_the_issued_pair(tmp_path: Path) -> None:
    served: list[Path] = []
    signer = FakeSigner(polls=3)
    m = _manager(signer, CertStore(tmp_path), served, now=lambda: T0)
    pair = await m.request()
    assert signer.reads == 3 and list(signer.csrs) == ["csr-1"]
    assert pair.cert.issuer == x509.load_pem_x509_certificate(CA.cert_pem).subject
    assert CertStore(tmp_path).load() is not None


async def test_no_csr_without_an_ip_address(tmp_path: Path) -> None:
    signer = FakeSigner()
    m = ServingCertManager(
        signer,
        CertStore(tmp_path),
        node="node-1",
        addresses=lambda: (("node-1",), ()),
        on_cert=lambda pair: None,
    )
    with pytest.raises(CSRError, match="no IP address"):
        await m.request()
    assert signer.csrs == {}


async def test_ttl_metric_follows_the_served_certificate(tmp_path: Path) -> None:
    served: list[Path] = []
    clock = T0 + datetime.timedelta(hours=1)
    m = _manager(FakeSigner(), CertStore(tmp_path), served, now=lambda: clock)
    assert m.ttl_seconds() == float("inf")
    m._use(await m.request())
    assert m.ttl_seconds() == 9 * 3600  # a 10 h certificate from T0, an hour in
    text = generate_latest(REGISTRY).decode()
    assert "kubelet_certificate_manager_server_ttl_seconds 32400.0" in text


async def test_denied_csr_and_timeout_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CSRError, match="denied"):
        await _manager(FakeSigner(deny=True), CertStore(tmp_path), []).request()
    slow = _manager(FakeSigner(polls=10**9), CertStore(tmp_path), [], wait=0.01)
    with pytest.raises(CSRError, match="not issued within"):
        await slow.request()


async def _run_until(m: ServingCertManager, served: list[Path], count: int) -> None:
    task = asyncio.create_task(m.run())
    try:
        for _ in range(500):
            if len(served) >= count:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"only {len(served)} certificates served")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_run_renews_at_the_deadline(tmp_path: Path) -> None:
    """A pair whose rotation deadline has passed is renewed with a new CSR."""
    store = CertStore(tmp_path)
    cert, key = _pair_pems(hours=10)
    store.save(cert, key, T0)
    served: list[Path] = []
    # 8.5 h into a 10 h certificate, with the earliest deadline (70%): renew now
    clock = T0 + datetime.timedelta(hours=8.5)
    signer = FakeSigner(start=clock)
    m = _manager(signer, store, served, now=lambda: clock, rand=lambda: 0.0)
    await _run_until(m, served, 2)
    assert served[0].name == "kubelet-server-2026-11-23-12-00-00.pem"  # the stored one first
    assert len(signer.csrs) == 1
    assert store.current_path.resolve() == served[1]


async def test_run_keeps_a_valid_pair_until_its_deadline(tmp_path: Path) -> None:
    store = CertStore(tmp_path)
    cert, key = _pair_pems(hours=10)
    store.save(cert, key, T0)
    served: list[Path] = []
    signer = FakeSigner()
    m = _manager(signer, store, served, now=lambda: T0 + datetime.timedelta(hours=1))
    task = asyncio.create_task(m.run())
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(served) == 1 and signer.csrs == {}


# ---------------------------------------------------------------- the swappable TLS context


async def _fetch(port: int) -> bytes:
    ctx = ssl.create_default_context(cafile=None)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        await reader.read()
        return bytes(der)
    finally:
        writer.close()


async def test_swappable_tls_fails_without_a_cert_then_serves_the_newest(tmp_path: Path) -> None:
    swap = SwappableTLS("")

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=swap.context)
    port = server.sockets[0].getsockname()[1]
    try:
        assert not swap.ready
        with pytest.raises((ssl.SSLError, OSError)):
            await _fetch(port)
        store = CertStore(tmp_path)
        for i in range(2):
            cert, key = _pair_pems()
            pair = store.save(cert, key, T0 + datetime.timedelta(seconds=i))
            swap.load(pair.path)
            served = x509.load_der_x509_certificate(await _fetch(port))
            assert served == pair.cert
    finally:
        server.close()
        await server.wait_closed()
