"""serverTLSBootstrap: the :10250 serving certificate requested from the apiserver as a CSR for
signer kubernetes.io/kubelet-serving, kept in the cert dir and renewed at 70-90% of its life.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kube.apiserver import ApiError, Resource
from kube.apiserver.requests import CERTIFICATESIGNINGREQUESTS
from kubelet.server.certstore import CertStore, Pair, StoreError, matches
from kubelet.server.metrics import SERVER_CERT_TTL

log = logging.getLogger(__name__)
SIGNER = "kubernetes.io/kubelet-serving"
USAGES = ("digital signature", "server auth")
"""Upstream's serving usages for an ECDSA key (RSA keys add key encipherment)."""
WAIT_SECONDS = 15 * 60.0
"""How long one CSR may wait for approval and issuance before a new one is made (upstream)."""
POLL_SECONDS = 1.0
RETRY_MIN, RETRY_MAX = 1.0, 128.0
Addresses = tuple[tuple[str, ...], tuple[str, ...]]
"""(DNS names, IP addresses) for the certificate: the node's Hostname and InternalIP addresses."""


class CSRError(Exception):
    """A CSR that did not give a usable certificate: denied, failed, timed out or mismatched."""


class CSRClient(Protocol):
    async def create(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, resource: Resource, name: str) -> dict[str, Any]: ...


def serving_csr(node: str, dns_names: Sequence[str], ips: Sequence[str]) -> tuple[bytes, bytes]:
    """A new P-256 key and a CSR (both PEM) with O=system:nodes, CN=system:node:<node> and the
    SANs, as upstream's kubelet serving template; raises ValueError for a bad IP."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
        ]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


def csr_body(csr_pem: bytes) -> dict[str, Any]:
    """The CertificateSigningRequest object to create (a generated name, as upstream)."""
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": base64.b64encode(csr_pem).decode(),
            "signerName": SIGNER,
            "usages": list(USAGES),
        },
    }


def issued_certificate(csr: Mapping[str, Any]) -> bytes | None:
    """The issued certificate (PEM) once the signer filled status.certificate; None while it
    waits; CSRError when it was Denied or Failed."""
    status = csr.get("status") or {}
    name = (csr.get("metadata") or {}).get("name", "?")
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Denied", "Failed") and cond.get("status", "True") == "True":
            why = cond.get("message") or cond.get("reason") or ""
            raise CSRError(f"certificate signing request {name} was {cond['type'].lower()}: {why}")
    raw = status.get("certificate")
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as e:
        raise CSRError(f"certificate signing request {name}: bad status.certificate: {e}") from e


def rotation_deadline(
    not_before: datetime.datetime, not_after: datetime.datetime, rand: float
) -> datetime.datetime:
    """When to renew: 70% of the lifetime plus up to 20% more at random (upstream's jitter)."""
    total = not_after - not_before
    return not_before + total * (0.7 + 0.2 * min(max(rand, 0.0), 1.0))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ServingCertManager:
    """Keeps a valid CSR-issued serving pair in the store and hands every new one to `on_cert`.
    Until the first is issued the server has none (handshakes fail, as upstream's kubelet)."""

    def __init__(
        self,
        client: CSRClient,
        store: CertStore,
        *,
        node: str,
        addresses: Callable[[], Addresses],
        on_cert: Callable[[Pair], None],
        rand: Callable[[], float] = random.random,
        now: Callable[[], datetime.datetime] = _now,
        poll: float = POLL_SECONDS,
        wait: float = WAIT_SECONDS,
    ) -> None:
        self._client = client
        self.store = store
        self._node = node
        self._addresses = addresses
        self._on_cert = on_cert
        self._rand = rand
        self._now = now
        self._poll = poll
        self._wait = wait
        self.current: Pair | None = None

    async def run(self) -> None:
        """Forever: use the stored pair while valid, renew at its deadline, retry with back-off."""
        pair = self.store.load()
        if pair is not None and pair.not_after > self._now():
            self._use(pair)
        retry = RETRY_MIN
        while True:
            if self.current is not None:
                deadline = rotation_deadline(
                    self.current.not_before, self.current.not_after, self._rand()
                )
                wait = (deadline - self._now()).total_seconds()
                if wait > 0:
                    log.info("serving certificate: next rotation at %s", deadline.isoformat())
                    await asyncio.sleep(wait)
            try:
                self._use(await self.request())
                retry = RETRY_MIN
            except (ApiError, CSRError, StoreError, OSError, ValueError) as e:
                log.warning("serving certificate request failed (retry in %.0fs): %s", retry, e)
                await asyncio.sleep(retry)
                retry = min(RETRY_MAX, retry * 2)

    def ttl_seconds(self) -> float:
        """Seconds until the served certificate expires; +inf while there is none."""
        if self.current is None:
            return float("inf")
        return (self.current.not_after - self._now()).total_seconds()

    def _use(self, pair: Pair) -> None:
        self.current = pair
        self._on_cert(pair)
        SERVER_CERT_TTL.set_function(self.ttl_seconds)
        log.info(
            "serving certificate from %s valid until %s",
            pair.path,
            pair.not_after.isoformat(),
        )

    async def request(self) -> Pair:
        """One CSR: create it, wait for the certificate, check it, store it."""
        dns_names, ips = self._addresses()
        if not ips:  # upstream requires an IP unless the AllowDNSOnlyNodeCSR gate is on
            raise CSRError("the node has no IP address yet; a serving certificate needs one")
        csr_pem, key_pem = serving_csr(self._node, dns_names, ips)
        created = await self._client.create(CERTIFICATESIGNINGREQUESTS, csr_body(csr_pem))
        name = str(created["metadata"]["name"])
        log.info(
            "serving certificate requested: CertificateSigningRequest %s (signer %s); it is "
            "issued once approved",
            name,
            SIGNER,
        )
        cert_pem = await self._wait_issued(name, created)
        certs = x509.load_pem_x509_certificates(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not certs or not matches(certs[0], key):
            raise CSRError(f"certificate signing request {name}: issued for another key")
        return self.store.save(cert_pem, key_pem, self._now())

    async def _wait_issued(self, name: str, obj: Mapping[str, Any]) -> bytes:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait
        while True:
            cert = issued_certificate(obj)
            if cert is not None:
                return cert
            if loop.time() >= give_up:
                raise CSRError(
                    f"certificate signing request {name} not issued within {self._wait:.0f}s "
                    "(approve it: kubectl certificate approve)"
                )
            await asyncio.sleep(self._poll)
            obj = await self._client.get(CERTIFICATESIGNINGREQUESTS, name)
