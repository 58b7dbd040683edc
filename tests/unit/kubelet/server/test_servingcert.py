"""serverTLSBootstrap: the serving CSR as upstream shapes it (subject, SANs, usages), no CSR before
the node has an IP, the manager against a fake signer (request, TTL metric, renewal at the
deadline), and the swappable TLS context (no certificate: handshakes fail; then the newest one is
served). The shared CSR flow, store and rotation loop are tested in tests/unit/kubelet/certs."""

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
from cryptography.x509.oid import NameOID
from prometheus_client import generate_latest

from kubelet.certs import csr
from kubelet.certs.csr import CSRError
from kubelet.certs.store import CertStore
from kubelet.metrics import REGISTRY
from kubelet.server.servingcert import SIGNER, ServingCertManager, serving_request
from kubelet.server.tls import SwappableTLS

from ..certs.signer import CA, T0, FakeSigner, sign


def test_serving_csr_subject_sans_and_body() -> None:
    req = serving_request("node-1", (("node-1",), ("10.0.0.5", "fd00::5")))
    parsed = x509.load_pem_x509_csr(req.csr_pem)
    assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "system:node:node-1"
    )
    assert parsed.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:nodes"
    )
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["node-1"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5", "fd00::5"]
    assert req.key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    body = csr.csr_body(req)
    assert body["spec"]["signerName"] == SIGNER == "kubernetes.io/kubelet-serving"
    assert body["spec"]["usages"] == ["digital signature", "server auth"]
    assert base64.b64decode(body["spec"]["request"]) == req.csr_pem
    assert body["metadata"] == {"generateName": "csr-"}


def _pair_pems(hours: float = 10.0) -> tuple[bytes, bytes]:
    req = serving_request("node-1", (("node-1",), ("10.0.0.5",)))
    return sign(req.csr_pem, hours=hours), req.key_pem


def _manager(
    signer: FakeSigner, store: CertStore, served: list[Path], **kw: Any
) -> ServingCertManager:
    return ServingCertManager(
        signer,
        store,
        node="node-1",
        addresses=lambda: (("node-1",), ("10.0.0.5",)),
        on_cert=lambda pair: served.append(pair.path),
        **kw,
    )


async def test_request_stores_and_reports_the_issued_pair(tmp_path: Path) -> None:
    served: list[Path] = []
    signer = FakeSigner(after=3)
    m = _manager(signer, CertStore(tmp_path), served, now=lambda: T0)
    pair = await m.request()
    assert signer.events == 3 and list(signer.csrs) == ["csr-1"]
    assert pair.cert.issuer == x509.load_pem_x509_certificate(CA.cert_pem).subject
    assert pair.path.name.startswith("kubelet-server-")
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
    await m.use(await m.request())
    assert m.ttl_seconds() == 9 * 3600  # a 10 h certificate from T0, an hour in
    text = generate_latest(REGISTRY).decode()
    assert "kubelet_certificate_manager_server_ttl_seconds 32400.0" in text


async def test_denied_csr_and_timeout_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CSRError, match="denied"):
        await _manager(FakeSigner(deny=True), CertStore(tmp_path), []).request()
    slow = _manager(FakeSigner(never=True), CertStore(tmp_path), [], wait=0.01)
    with pytest.raises(CSRError, match=r"not issued within 0s \(approve it: kubectl certificate"):
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
    store.save(*_pair_pems(hours=10), T0)
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
    store.save(*_pair_pems(hours=10), T0)
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
