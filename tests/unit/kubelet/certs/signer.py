"""A fake of the apiserver's CSR API with the kube-controller-manager's signer behind it, for the
certificate tests: CSRs are stored, watched, then approved and signed (or denied) by a test CA.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from cluster import pki
from kube.apiserver import AlreadyExists, ApiConnectionError, NotFound, Resource, WatchEvent
from kube.apiserver.requests import Selector

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


class FakeSigner:
    """CSRs are signed (or denied with `deny`) when the `after`-th watch event is delivered;
    `never`: watches see nothing. `drop_watches` watches end with a dropped connection first.
    Counts creates, gets and watches."""

    def __init__(
        self,
        *,
        hours: float = 10.0,
        deny: bool = False,
        after: int = 1,
        start: datetime.datetime = T0,
        never: bool = False,
        drop_watches: int = 0,
        unreachable: int = 0,
    ) -> None:
        self.csrs: dict[str, dict[str, Any]] = {}
        self.hours, self.deny, self.after, self.start = hours, deny, after, start
        self.never, self.drop_watches, self.unreachable = never, drop_watches, unreachable
        self.events = self.gets = self.watches = self.creates = 0

    async def create(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        assert resource.plural == "certificatesigningrequests"
        if self.unreachable > 0:
            self.unreachable -= 1
            raise ApiConnectionError(message="ConnectError: refused")
        self.creates += 1
        name = obj["metadata"].get("name") or f"csr-{len(self.csrs) + 1}"
        if name in self.csrs:
            raise AlreadyExists(code=409, reason="AlreadyExists", message=f"{name} exists")
        meta = {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"}
        self.csrs[name] = {**copy.deepcopy(obj), "metadata": meta, "status": {}}
        return copy.deepcopy(self.csrs[name])

    async def get(self, resource: Resource, name: str) -> dict[str, Any]:
        self.gets += 1
        if name not in self.csrs:
            raise NotFound(code=404, reason="NotFound", message=f"{name} not found")
        return copy.deepcopy(self.csrs[name])

    async def watch(
        self,
        resource: Resource,
        *,
        field_selector: Selector | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        assert isinstance(field_selector, Mapping)
        name = field_selector["metadata.name"]
        self.watches += 1
        if self.drop_watches > 0:
            self.drop_watches -= 1
            raise ApiConnectionError(message="ReadError: dropped")
        if self.never:
            await asyncio.sleep(3600)
        while True:
            self.events += 1
            if self.events >= self.after:
                self._decide(name)
                yield WatchEvent("MODIFIED", copy.deepcopy(self.csrs[name]))
                return
            yield WatchEvent("MODIFIED", copy.deepcopy(self.csrs[name]))

    def _decide(self, name: str) -> None:
        csr = self.csrs[name]
        if self.deny:
            csr["status"] = {
                "conditions": [
                    {"type": "Denied", "status": "True", "reason": "Nope", "message": "no way"}
                ]
            }
            return
        pem = sign(base64.b64decode(csr["spec"]["request"]), hours=self.hours, start=self.start)
        csr["status"] = {
            "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved"}],
            "certificate": base64.b64encode(pem).decode(),
        }

    async def close(self) -> None:
        return None
