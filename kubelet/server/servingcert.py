"""serverTLSBootstrap: the :10250 serving certificate requested from the apiserver as a CSR for
signer kubernetes.io/kubelet-serving, kept in the cert dir and renewed at 70-90% of its life.
Only the serving template lives here; the CSR flow and the rotation loop are kubelet/certs'.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

from kubelet.certs.csr import CSRClient, CSRError, Request, new_key_pem, node_csr
from kubelet.certs.manager import WAIT_SECONDS, CertificateManager
from kubelet.certs.metrics import SERVER_CERT_TTL, SERVER_RENEW_ERRORS
from kubelet.certs.store import CertStore, Pair

SIGNER = "kubernetes.io/kubelet-serving"
USAGES = ("digital signature", "server auth")
"""Upstream's serving usages for an ECDSA key (RSA keys add key encipherment)."""
Addresses = tuple[tuple[str, ...], tuple[str, ...]]
"""(DNS names, IP addresses) for the certificate: the node's Hostname and InternalIP addresses."""


def serving_request(node: str, addresses: Addresses) -> Request:
    """A new key and a serving CSR for the node's names and IPs. Upstream requires an IP unless
    the AllowDNSOnlyNodeCSR gate is on: without one this is a CSRError (retried later)."""
    dns_names, ips = addresses
    if not ips:
        raise CSRError("the node has no IP address yet; a serving certificate needs one")
    key_pem = new_key_pem()
    return Request(node_csr(key_pem, node, dns_names, ips), key_pem, SIGNER, USAGES)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ServingCertManager(CertificateManager):
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
        wait: float = WAIT_SECONDS,
    ) -> None:
        async def hand_on(pair: Pair) -> None:
            on_cert(pair)

        super().__init__(
            client,
            store,
            make=lambda: serving_request(node, addresses()),
            on_cert=hand_on,
            what="serving certificate",
            hint=" (approve it: kubectl certificate approve)",
            ttl=SERVER_CERT_TTL,
            renew_errors=SERVER_RENEW_ERRORS,
            rand=rand,
            now=now,
            wait=wait,
        )
