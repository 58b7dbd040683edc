"""The agent's apiserver client and its client certificate: TLS bootstrap first when a bootstrap
kubeconfig is given, then with rotateCertificates the rotation loop, which swaps the running
client's TLS credentials without a restart. The composition root calls open_client only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from kube.apiserver import ApiClient, Credentials, KubeconfigError, ssl_context
from kube.apiserver.kubeconfig import load_kubeconfig
from kubelet.certs.bootstrap import (
    BootstrapError,
    client_request,
    credentials_pair,
    load_client_cert,
)
from kubelet.certs.csr import new_key_pem
from kubelet.certs.manager import CertificateManager
from kubelet.certs.metrics import CLIENT_CERT_TTL, CLIENT_RENEW_ERRORS
from kubelet.certs.store import CLIENT, CertStore, Pair, StoreError
from kubelet.config import RunConfig

log = logging.getLogger(__name__)


class ClientSetupError(Exception):
    """No apiserver client could be made: names the kubeconfig and the cause."""


def with_pair(creds: Credentials, pair: Pair) -> Credentials:
    """`creds` presenting `pair` (read from its pem file, which holds certificate and key);
    `creds` itself when the pair is the kubeconfig's own (its files or inline data)."""
    if pair.path in (creds.source, creds.client_cert_file):
        return creds
    return dataclasses.replace(
        creds,
        client_cert_file=pair.path,
        client_key_file=pair.path,
        client_cert_data=None,
        client_key_data=None,
    )


async def open_client(
    config: RunConfig, *, on_expired: Callable[[str], None]
) -> tuple[ApiClient, CertificateManager | None]:
    """The apiserver client for `config.kubeconfig` (bootstrapped first with
    --bootstrap-kubeconfig), and the client certificate's rotation loop when rotateCertificates
    is set (the caller supervises its `run`). `on_expired` is called when the certificate
    expired and the apiserver will not renew it (upstream's kubelet exits)."""
    if config.kubeconfig is None:
        raise ClientSetupError("--kubeconfig is required (standalone mode is not supported yet)")
    try:
        if config.bootstrap_kubeconfig is not None:
            await load_client_cert(
                kubeconfig=config.kubeconfig,
                bootstrap_kubeconfig=config.bootstrap_kubeconfig,
                cert_dir=config.cert_dir,
                node=config.node_name,
            )
        creds = load_kubeconfig(config.kubeconfig)
    except (BootstrapError, KubeconfigError) as e:
        raise ClientSetupError(str(e)) from e
    if not config.kubelet.rotate_certificates:
        return _client(creds), None
    store = CertStore(config.cert_dir, CLIENT)
    initial = store.load()
    if initial is None:
        try:
            initial = credentials_pair(creds)
        except (StoreError, OSError) as e:
            log.warning("rotateCertificates is set but %s: client certificate rotation is off", e)
            return _client(creds), None
    client = _client(with_pair(creds, initial))
    in_use = [initial.cert.serial_number]

    async def swap(pair: Pair) -> None:
        if pair.cert.serial_number == in_use[0]:
            return
        log.info(
            "client certificate rotated (%s); closing the apiserver connections made with the "
            "old one",
            pair.path,
        )
        await client.use_tls(ssl_context(with_pair(creds, pair)))
        in_use[0] = pair.cert.serial_number

    manager = CertificateManager(
        client,
        store,
        make=lambda: client_request(config.node_name, new_key_pem(), named=False),
        on_cert=swap,
        what="client certificate",
        initial=initial,
        ttl=CLIENT_CERT_TTL,
        renew_errors=CLIENT_RENEW_ERRORS,
        on_expired=on_expired,
    )
    return client, manager


def _client(creds: Credentials) -> ApiClient:
    return ApiClient(
        creds.server,
        verify=ssl_context(creds),
        token=creds.token,
        sni_hostname=creds.tls_server_name,
    )
