"""The node's HTTP endpoints: the :10250 API (authentication and authorization, stats, container
logs, exec/attach/port-forward streaming), its TLS and bootstrapped serving certificate, and the
plain :10248 healthz. Built here for the composition root; the metrics it serves live elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cri.client import RuntimeClient
from kube.apiserver import ApiClient, JsonObject
from kubelet.certs.store import CertStore
from kubelet.config import RunConfig, to_dict
from kubelet.server.app import KubeletServer, Routes, Sources, make_app
from kubelet.server.auth import Authenticator, Authorizer
from kubelet.server.servingcert import ServingCertManager
from kubelet.server.tls import SwappableTLS, server_context, serving_files

__all__ = ["KubeletServer", "Sources", "build"]


def build(
    config: RunConfig,
    *,
    node: str,
    node_ips: tuple[str, ...],
    client: ApiClient,
    runtime: RuntimeClient,
    health: Callable[[], tuple[bool, str]],
    pods: Callable[[], Awaitable[list[JsonObject]]],
) -> KubeletServer:
    """The server for `config.kubelet` (address, port, TLS files, authentication, authorization).
    With serverTLSBootstrap and no tlsCertFile/tlsPrivateKeyFile the serving certificate comes
    from a CSR: the server's `cert_manager` must run (the agent supervises it)."""
    kc = config.kubelet
    authn = Authenticator(
        client,
        webhook=kc.authentication.webhook.enabled,
        anonymous=kc.authentication.anonymous.enabled,
        cache_ttl=kc.authentication.webhook.cache_ttl.total_seconds(),
    )
    authz = Authorizer(
        client,
        mode=kc.authorization.mode,
        node=node,
        allowed_ttl=kc.authorization.webhook.cache_authorized_ttl.total_seconds(),
        denied_ttl=kc.authorization.webhook.cache_unauthorized_ttl.total_seconds(),
    )
    sources = Sources(
        node=node, runtime=runtime, health=health, pods=pods, config=lambda: to_dict(kc)
    )
    app = make_app(Routes(sources), authn, authz)
    client_ca = kc.authentication.x509.client_ca_file
    if kc.server_tls_bootstrap and not (kc.tls_cert_file or kc.tls_private_key_file):
        swap = SwappableTLS(client_ca)
        manager = ServingCertManager(
            client,
            CertStore(config.cert_dir),
            node=node,
            addresses=lambda: ((node,), node_ips),
            on_cert=lambda pair: swap.load(pair.path),
        )
        return KubeletServer(
            app, address=kc.address, port=kc.port, tls=swap.context, cert_manager=manager
        )
    files = serving_files(
        cert_file=kc.tls_cert_file,
        key_file=kc.tls_private_key_file,
        cert_dir=config.cert_dir,
        node=node,
        ips=node_ips,
    )
    tls = server_context(files, client_ca)
    return KubeletServer(app, address=kc.address, port=kc.port, tls=tls)
