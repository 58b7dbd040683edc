"""TLS bootstrap, as upstream's kubelet does it: when the --kubeconfig file is missing or its client
certificate is unusable or expired, ask for a client certificate with the --bootstrap-kubeconfig
credentials (a CSR for kubernetes.io/kube-apiserver-client-kubelet), keep it in the cert dir as
kubelet-client-<time>.pem + kubelet-client-current.pem, and write the kubeconfig pointing at it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from kube.apiserver import (
    ApiClient,
    ApiConnectionError,
    ApiError,
    Credentials,
    KubeconfigError,
    ssl_context,
)
from kube.apiserver.kubeconfig import load_kubeconfig
from kubelet.certs.csr import (
    CSRClient,
    CSRError,
    Request,
    digested_name,
    load_key,
    new_key_pem,
    node_csr,
    obtain,
)
from kubelet.certs.store import CLIENT, CertStore, Pair, StoreError, parse_pair

log = logging.getLogger(__name__)
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
USAGES = ("digital signature", "client auth")
"""Upstream's client usages for an ECDSA key (RSA keys add key encipherment)."""
TMP_KEY = "kubelet-client.key.tmp"
"""The key kept across restarts until its CSR is issued (so a retry finds the same CSR)."""
BOOTSTRAP_WAIT = 3600.0
"""How long the bootstrap CSR may wait for approval and issuance (upstream)."""
REACH_WAIT = 60.0
"""How long an unreachable apiserver is retried before the bootstrap gives up (upstream: 1 min)."""
REACH_PAUSE = 2.0
"""Seconds between two tries while the apiserver is unreachable."""
APPROVE_HINT = (
    " (the kube-controller-manager approves it when the bootstrap token's group is bound to "
    "ClusterRole system:certificates.k8s.io:certificatesigningrequests:nodeclient; or approve "
    "it: kubectl certificate approve)"
)


class BootstrapError(Exception):
    """The client certificate could not be obtained; the message says which file or CSR."""


class BootstrapClient(CSRClient, Protocol):
    async def close(self) -> None: ...


def connect(creds: Credentials) -> BootstrapClient:
    """An apiserver client with the bootstrap credentials (a bootstrap token, as a rule)."""
    return ApiClient(
        creds.server,
        verify=ssl_context(creds),
        token=creds.token,
        sni_hostname=creds.tls_server_name,
    )


def client_request(node: str, key_pem: bytes, *, named: bool) -> Request:
    """A client CSR for the node (CN system:node:<node>, O system:nodes). `named`: upstream's
    bootstrap name node-csr-<digest>; else generateName csr- (rotation)."""
    name = digested_name(key_pem, node, USAGES) if named else None
    return Request(node_csr(key_pem, node), key_pem, SIGNER, USAGES, name)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def credentials_pair(creds: Credentials) -> Pair:
    """The client certificate and key a kubeconfig names (files or inline data);
    StoreError/OSError when there is none or it cannot be used."""
    cert = creds.client_cert_data or _read(creds.client_cert_file)
    key = creds.client_key_data or _read(creds.client_key_file)
    where = creds.client_cert_file or creds.source or Path("kubeconfig")
    if not cert or not key:
        raise StoreError(f"{where}: no client certificate (a token or no credentials)")
    return parse_pair(cert.rstrip(b"\n") + b"\n" + key, where)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def kubeconfig_still_valid(path: Path, now: datetime.datetime) -> bool:
    """Whether `path` holds a kubeconfig with a usable, unexpired client certificate (upstream's
    isClientConfigStillValid): missing or unusable is False (logged), a path that cannot even
    be checked is a BootstrapError."""
    try:
        path.stat()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise BootstrapError(f"error reading existing kubeconfig {path}: {e}") from e
    try:
        pair = credentials_pair(load_kubeconfig(path))
    except (KubeconfigError, StoreError, OSError) as e:
        log.warning("kubeconfig %s is not usable, bootstrapping again: %s", path, e)
        return False
    if pair.not_after <= now:
        log.warning(
            "the client certificate of %s expired at %s, bootstrapping again",
            path,
            pair.not_after.isoformat(),
        )
        return False
    return True


def render_kubeconfig(bootstrap: Credentials, pem_path: Path) -> str:
    """The kubeconfig upstream writes after bootstrap: the bootstrap kubeconfig's server and CA,
    client-certificate and client-key both the current pem's path."""
    cluster: dict[str, Any] = {"server": bootstrap.server}
    if bootstrap.ca_file is not None:
        cluster["certificate-authority"] = str(bootstrap.ca_file)
    elif bootstrap.ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(bootstrap.ca_data).decode()
    if bootstrap.insecure_skip_tls_verify:
        cluster["insecure-skip-tls-verify"] = True
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster}],
        "contexts": [
            {
                "name": "default-context",
                "context": {
                    "cluster": "default-cluster",
                    "namespace": "default",
                    "user": "default-auth",
                },
            }
        ],
        "current-context": "default-context",
        "preferences": {},
        "users": [
            {
                "name": "default-auth",
                "user": {"client-certificate": str(pem_path), "client-key": str(pem_path)},
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_private(path: Path, data: bytes) -> None:
    """Write `path` (mode 0600) through a temporary file and one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def bootstrap_key(cert_dir: Path) -> bytes:
    """The key for the bootstrap CSR: the one kept from an earlier try, else a new one (kept in
    <cert-dir>/kubelet-client.key.tmp until the certificate is issued, as upstream)."""
    path = cert_dir / TMP_KEY
    try:
        key_pem = path.read_bytes()
        load_key(key_pem)
        return key_pem
    except FileNotFoundError:
        pass
    except ValueError as e:
        log.warning("%s is no usable key (%s); making a new one", path, e)
    key_pem = new_key_pem()
    write_private(path, key_pem)
    return key_pem


async def request_client_cert(
    client: CSRClient,
    *,
    node: str,
    store: CertStore,
    now: Callable[[], datetime.datetime] = _now,
    wait: float = BOOTSTRAP_WAIT,
    reach: float | None = None,
) -> Pair:
    """The bootstrap CSR, waited for; the issued pair stored. An unreachable apiserver is tried
    again for `reach` seconds (default REACH_WAIT; the CSR's fixed name makes a retry find the
    same CSR)."""
    key_pem = bootstrap_key(store.directory)
    request = client_request(node, key_pem, named=True)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + (REACH_WAIT if reach is None else reach)
    while True:
        try:
            cert_pem = await obtain(client, request, wait=wait, now=now(), hint=APPROVE_HINT)
            break
        except ApiConnectionError as e:
            if loop.time() >= give_up:
                raise
            log.info("apiserver not reachable yet for the bootstrap CSR: %s", e)
            await asyncio.sleep(REACH_PAUSE)
    pair = store.save(cert_pem, key_pem, now())
    (store.directory / TMP_KEY).unlink(missing_ok=True)
    return pair


async def load_client_cert(
    *,
    kubeconfig: Path,
    bootstrap_kubeconfig: Path,
    cert_dir: Path,
    node: str,
    now: Callable[[], datetime.datetime] = _now,
    wait: float = BOOTSTRAP_WAIT,
    client_for: Callable[[Credentials], BootstrapClient] = connect,
) -> None:
    """Make sure `kubeconfig` holds a valid client certificate: kept if it does; else the cert
    dir's valid kubelet-client-current.pem, or a new one from a bootstrap CSR, then the
    kubeconfig written to point at it. Raises BootstrapError naming the file or CSR."""
    if kubeconfig_still_valid(kubeconfig, now()):
        log.info("kubeconfig %s is valid; no bootstrap needed", kubeconfig)
        return
    try:
        creds = load_kubeconfig(bootstrap_kubeconfig)
    except KubeconfigError as e:
        raise BootstrapError(f"unable to load bootstrap kubeconfig: {e}") from e
    store = CertStore(cert_dir, CLIENT)
    pair = store.load()
    if pair is not None and pair.not_after > now():
        log.info("reusing the client certificate %s (valid until %s)", pair.path, pair.not_after)
    else:
        log.info("requesting a client certificate with the bootstrap credentials")
        client = client_for(creds)
        try:
            pair = await request_client_cert(client, node=node, store=store, now=now, wait=wait)
        except ApiConnectionError as e:
            raise BootstrapError(f"TLS bootstrap of node {node}: apiserver unreachable: {e}") from e
        except (ApiError, CSRError, StoreError, OSError, ValueError) as e:
            raise BootstrapError(f"TLS bootstrap of node {node}: {e}") from e
        finally:
            await client.close()
    write_private(kubeconfig, render_kubeconfig(creds, store.current_path).encode())
    log.info("wrote kubeconfig %s (client certificate %s)", kubeconfig, store.current_path)
