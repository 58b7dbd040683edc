"""One certificate from the CSR API: the key and request as upstream's kubelet makes them (pure),
then create the CertificateSigningRequest and watch it until it is issued, denied or timed out.
Knows no signer policy and keeps no state; the store and the rotation loop are elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from kube.apiserver import AlreadyExists, ApiConnectionError, Gone, Resource, WatchEvent
from kube.apiserver.requests import CERTIFICATESIGNINGREQUESTS, Selector
from kubelet.certs.store import matches

log = logging.getLogger(__name__)
NODES_GROUP = "system:nodes"
WATCH_SECONDS = 300
"""Server-side timeout of one watch on the CSR; the wait goes on with a new watch after it."""
REWATCH_PAUSE = 1.0
"""Seconds between a dropped watch and reading the CSR again."""


class CSRError(Exception):
    """A CSR that did not give a usable certificate: denied, failed, deleted, timed out or
    issued for another key. The message names the CSR."""


class CSRClient(Protocol):
    """What the flow needs of the apiserver client (kube.apiserver.ApiClient has it)."""

    async def create(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, resource: Resource, name: str) -> dict[str, Any]: ...

    def watch(
        self,
        resource: Resource,
        *,
        field_selector: Selector | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncGenerator[WatchEvent, None]: ...


@dataclass(frozen=True)
class Request:
    """One certificate request: the CSR and its key (PEM), the signer, the usages, and the
    object's name (None: generateName csr-, as upstream's certificate manager)."""

    csr_pem: bytes
    key_pem: bytes
    signer: str
    usages: tuple[str, ...]
    name: str | None = None

    @property
    def what(self) -> str:
        return f"certificate signing request {self.name}" if self.name else "a new CSR"


def new_key_pem() -> bytes:
    """A new ECDSA P-256 key (upstream's default key algorithm), PEM (SEC1, "EC PRIVATE KEY")."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def load_key(key_pem: bytes) -> PrivateKeyTypes:
    """The private key of `key_pem`; ValueError when it is no usable key."""
    return serialization.load_pem_private_key(key_pem, password=None)


def node_csr(
    key_pem: bytes, node: str, dns_names: Sequence[str] = (), ips: Sequence[str] = ()
) -> bytes:
    """A CSR (PEM) with O=system:nodes, CN=system:node:<node> and the SANs, signed with the key,
    as upstream's node templates; raises ValueError for a bad IP or key."""
    key = load_key(key_pem)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"node key: ECDSA expected, got {type(key).__name__}")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
        ]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def digested_name(key_pem: bytes, node: str, usages: Sequence[str]) -> str:
    """Upstream's bootstrap CSR name, node-csr-<digest>: SHA-512/256 over the public key, the
    subject and the usages, so a retry with the same key finds its earlier CSR."""
    public = load_key(key_pem).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.new("sha512_256")
    for part in (
        der,
        f"system:node:{node}".encode(),
        NODES_GROUP.encode(),
        *map(str.encode, usages),
    ):
        digest.update(_b64url(part).encode() + b"|")
    return f"node-csr-{_b64url(digest.digest())}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def csr_body(request: Request) -> dict[str, Any]:
    """The CertificateSigningRequest object to create."""
    meta = {"name": request.name} if request.name else {"generateName": "csr-"}
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": meta,
        "spec": {
            "request": base64.b64encode(request.csr_pem).decode(),
            "signerName": request.signer,
            "usages": list(request.usages),
        },
    }


def issued_certificate(csr: Mapping[str, Any]) -> bytes | None:
    """The issued certificate (PEM) once the signer filled status.certificate (the apiserver
    allows that only on approved CSRs); None while it waits; CSRError when it was Denied or
    Failed (with the condition's reason and message)."""
    status = csr.get("status") or {}
    name = (csr.get("metadata") or {}).get("name", "?")
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Denied", "Failed") and cond.get("status", "True") == "True":
            why = ", ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
            raise CSRError(f"certificate signing request {name} was {cond['type'].lower()}: {why}")
    raw = status.get("certificate")
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as e:
        raise CSRError(f"certificate signing request {name}: bad status.certificate: {e}") from e


def check_issued(name: str, cert_pem: bytes, key_pem: bytes, now: datetime.datetime) -> None:
    """The issued chain must be for our key and not expired (upstream's checks)."""
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        raise CSRError(f"certificate signing request {name}: unreadable certificate: {e}") from e
    if not certs or not matches(certs[0], load_key(key_pem)):
        raise CSRError(f"certificate signing request {name}: issued for another key")
    for cert in certs:
        if cert.not_valid_after_utc <= now:
            raise CSRError(
                f"certificate signing request {name}: issued certificate expired at "
                f"{cert.not_valid_after_utc.isoformat()}"
            )


def _same_request(existing: Mapping[str, Any], request: Request) -> bool:
    """An existing CSR of that name is ours: same subject, signer and public key."""
    try:
        theirs = x509.load_pem_x509_csr(base64.b64decode(existing["spec"]["request"]))
    except (KeyError, ValueError, TypeError):
        return False
    ours = x509.load_pem_x509_csr(request.csr_pem)
    signer = existing["spec"].get("signerName")
    return (
        theirs.subject == ours.subject
        and (not signer or signer == request.signer)
        and matches_public(theirs, request.key_pem)
    )


def matches_public(csr: x509.CertificateSigningRequest, key_pem: bytes) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(
        csr.public_key().public_bytes(der, spki)
        == load_key(key_pem).public_key().public_bytes(der, spki)
    )


async def submit(client: CSRClient, request: Request) -> dict[str, Any]:
    """Create the CSR; a named one that exists already is reused when it is ours (a retry)."""
    try:
        return await client.create(CERTIFICATESIGNINGREQUESTS, csr_body(request))
    except AlreadyExists:
        if not request.name:
            raise
    existing = await client.get(CERTIFICATESIGNINGREQUESTS, request.name)
    if not _same_request(existing, request):
        raise CSRError(
            f"certificate signing request {request.name} exists for another key or subject"
        )
    log.info("certificate signing request %s exists already; reusing it", request.name)
    return existing


async def obtain(
    client: CSRClient,
    request: Request,
    *,
    wait: float,
    now: datetime.datetime,
    hint: str = "",
) -> bytes:
    """Submit `request` and wait up to `wait` seconds for its certificate (PEM, checked to
    belong to the key). `hint` ends the timeout message (how to get it approved)."""
    created = await submit(client, request)
    name = str(created["metadata"]["name"])
    log.info("certificate signing request %s created (signer %s)", name, request.signer)
    try:
        async with asyncio.timeout(wait):
            cert_pem = await wait_issued(client, created)
    except TimeoutError:
        raise CSRError(
            f"certificate signing request {name} not issued within {wait:.0f}s{hint}"
        ) from None
    check_issued(name, cert_pem, request.key_pem, now)
    log.info("certificate signing request %s issued", name)
    return cert_pem


async def wait_issued(client: CSRClient, csr: Mapping[str, Any]) -> bytes:
    """Watch the CSR (fieldSelector metadata.name) until it has a certificate; a dropped or
    expired watch reads the object again and watches on. No timeout of its own."""
    meta = csr.get("metadata") or {}
    name, uid = str(meta.get("name")), meta.get("uid")
    obj: Mapping[str, Any] = csr
    while True:
        cert = issued_certificate(obj)
        if cert is not None:
            return cert
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "") or None
        try:
            found = await _watch_once(client, name, uid, rv)
        except (Gone, ApiConnectionError) as e:
            log.debug("watch on certificate signing request %s ended: %s", name, e)
            if isinstance(e, ApiConnectionError):
                await asyncio.sleep(REWATCH_PAUSE)
            found = await client.get(CERTIFICATESIGNINGREQUESTS, name)
        if found is not None:
            obj = found


async def _watch_once(
    client: CSRClient, name: str, uid: object, rv: str | None
) -> Mapping[str, Any] | None:
    """Events of one watch until the CSR has a certificate or an outcome; the last object seen
    (None if the watch ended with no change)."""
    last: Mapping[str, Any] | None = None
    events = client.watch(
        CERTIFICATESIGNINGREQUESTS,
        field_selector={"metadata.name": name},
        resource_version=rv,
        timeout_seconds=WATCH_SECONDS,
    )
    async with contextlib.aclosing(events):
        async for event in events:
            if event.type == "DELETED":
                raise CSRError(f"certificate signing request {name} was deleted")
            if event.type not in ("ADDED", "MODIFIED"):
                continue
            obj = event.object
            if uid and (obj.get("metadata") or {}).get("uid") not in (None, uid):
                raise CSRError(f"certificate signing request {name} changed UIDs")
            last = obj
            if issued_certificate(obj) is not None:
                return obj
    return last
