"""Client TLS bootstrap and rotation on the real cluster: the agent, given only a bootstrap
kubeconfig with a real bootstrap token, gets its client certificate from a CSR the
kube-controller-manager approves (kubeadm's RBAC, as `up` applies it), writes its kubeconfig,
registers and goes Ready; with a short signing duration it renews the certificate through a CSR
signed with its own node identity and keeps working without a restart. Also: ApiClient.use_tls
against the apiserver (who the apiserver thinks we are, before and after the swap).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from cluster import joining, process
from cluster import up as cluster
from cluster.http import request
from cluster.spec import ClusterSpec, controller_manager_command
from kube.apiserver import ApiClient, Resource
from kubelet.certs.store import CLIENT, CertStore, Pair, parse_pair

from .conftest import NODE
from .podutil import Json, api_json, wait_for

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SELF_REVIEWS = Resource(
    "selfsubjectreviews", version="v1", group="authentication.k8s.io", namespaced=False
)
SIGNING_DURATION = "140s"
"""The controller-manager's signer backdates by 5 min and ends certificates at now + this: a
7 min 20 s life, so the 70-90% rotation deadline falls 8-96 s after issuance."""


@dataclass(frozen=True)
class Boot:
    spec: ClusterSpec
    token: joining.BootstrapToken
    root: Path
    """The node's directory: bootstrap-kubelet.conf, kubelet.conf, root/ (root dir, pki)."""

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubelet.conf"

    @property
    def store(self) -> CertStore:
        return CertStore(self.root / "root" / "pki", CLIENT)


def _client_csrs(spec: ClusterSpec) -> list[Json]:
    items: list[Json] = api_json(spec, CSRS)["items"]
    return [c for c in items if c["spec"]["signerName"] == SIGNER]


def _forget_client_cert(boot: Boot) -> None:
    """No kubeconfig, no client pem, no CSRs: the next start bootstraps from scratch."""
    boot.kubeconfig.unlink(missing_ok=True)
    pki = boot.store.directory
    if pki.is_dir():
        for path in pki.glob("kubelet-client*"):
            path.unlink()
    for csr in _client_csrs(boot.spec):
        cluster.api(boot.spec, f"{CSRS}/{csr['metadata']['name']}", method="DELETE")


def _bootstrap_kubeconfig(spec: ClusterSpec, token: joining.BootstrapToken, path: Path) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubernetes",
                "cluster": {
                    "server": spec.server,
                    "certificate-authority-data": base64.b64encode(
                        (spec.pki / "server-ca.crt").read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": "tls-bootstrap-token-user", "user": {"token": token.value}}],
        "contexts": [
            {
                "name": "bootstrap",
                "context": {"cluster": "kubernetes", "user": "tls-bootstrap-token-user"},
            }
        ],
        "current-context": "bootstrap",
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def _start_agent(boot: Boot, extra: str = "") -> int:
    """`pykubelet run` with --bootstrap-kubeconfig and a --kubeconfig that may not exist yet."""
    spec, root = boot.spec, boot.root
    config = root / "kubelet-config.yaml"
    config.write_text(cluster.agent_config(spec, extra=extra))
    return process.start(
        cluster.agent_daemon(spec, NODE),
        [
            sys.executable,
            "-m",
            "pykubelet.cli",
            "run",
            f"--config={config}",
            f"--bootstrap-kubeconfig={root / 'bootstrap-kubelet.conf'}",
            f"--kubeconfig={boot.kubeconfig}",
            f"--hostname-override={NODE}",
            f"--root-dir={root / 'root'}",
        ],
        env=cluster.agent_network_env(spec),
    )


def _restart_controller_manager(spec: ClusterSpec, *extra: str) -> None:
    d = cluster.daemon(spec, "kube-controller-manager")
    process.stop(d)
    process.start(d, [*controller_manager_command(spec), *extra])
    url = f"https://{spec.address}:{spec.ports.controller_manager}/healthz"
    process.wait_ready(d, lambda: request(url, timeout=2).status == 200, timeout=60)


@pytest.fixture(scope="module")
def boot(cluster_spec: ClusterSpec) -> Iterator[Boot]:
    """A bootstrap token and kubeconfig for the node, and a controller-manager signing
    certificates for SIGNING_DURATION; everything removed or restored after, and the agent
    stopped (the next module starts it with its usual kubeconfig)."""
    spec = cluster_spec
    process.stop(cluster.agent_daemon(spec, NODE))
    token = joining.new_token()
    now = datetime.datetime.now(datetime.UTC)
    joining.apply(spec, [joining.token_secret(token, now=now)], cluster.api)
    root = spec.directory / "nodes" / NODE
    root.mkdir(parents=True, exist_ok=True)
    result = Boot(spec, token, root)
    _bootstrap_kubeconfig(spec, token, root / "bootstrap-kubelet.conf")
    _forget_client_cert(result)
    try:
        _restart_controller_manager(spec, f"--cluster-signing-duration={SIGNING_DURATION}")
        yield result
    finally:
        process.stop(cluster.agent_daemon(spec, NODE))
        _restart_controller_manager(spec)
        _forget_client_cert(result)
        (root / "bootstrap-kubelet.conf").unlink(missing_ok=True)
        cluster.api(
            spec, f"/api/v1/namespaces/kube-system/secrets/{token.secret_name}", method="DELETE"
        )


def _first_pair(boot: Boot) -> Pair:
    """The oldest kubelet-client-<time>.pem: the one the bootstrap CSR gave."""
    oldest = min(boot.store.directory.glob("kubelet-client-2*.pem"))
    return parse_pair(oldest.read_bytes(), oldest)


def _ready(spec: ClusterSpec) -> bool:
    return cluster.node_ready(spec, NODE)


def _issued(csr: Json) -> bool:
    conds = {c["type"]: c for c in csr.get("status", {}).get("conditions", [])}
    return "Approved" in conds and bool(csr.get("status", {}).get("certificate"))


def test_agent_bootstraps_its_client_certificate_and_goes_ready(boot: Boot) -> None:
    spec = boot.spec
    pid = _start_agent(boot, extra="rotateCertificates: true")
    csr = wait_for(
        lambda: [c for c in _client_csrs(spec) if _issued(c)], 60, "an issued client CSR"
    )[0]
    assert csr["metadata"]["name"].startswith("node-csr-")
    assert csr["spec"]["username"] == f"system:bootstrap:{boot.token.id}"
    assert "system:bootstrappers:kubeadm:default-node-token" in csr["spec"]["groups"]
    assert sorted(csr["spec"]["usages"]) == ["client auth", "digital signature"]
    approved = next(c for c in csr["status"]["conditions"] if c["type"] == "Approved")
    assert approved["reason"] == "AutoApproved"  # the csrapproving controller, not us
    wait_for(boot.kubeconfig.exists, 30, "the kubeconfig written")
    current = boot.store.current_path
    assert current.is_symlink() and current.resolve().name.startswith("kubelet-client-2")
    assert current.resolve().stat().st_mode & 0o077 == 0
    doc = yaml.safe_load(boot.kubeconfig.read_text())
    assert doc["users"][0]["user"] == {
        "client-certificate": str(current),
        "client-key": str(current),
    }
    assert doc["clusters"][0]["cluster"]["server"] == spec.server
    first = _first_pair(boot)
    issued = x509.load_pem_x509_certificate(base64.b64decode(csr["status"]["certificate"]))
    assert first.cert == issued
    assert first.cert.subject.rfc4514_string() == f"CN=system:node:{NODE},O=system:nodes"
    process.wait_ready(cluster.agent_daemon(spec, NODE), lambda: _ready(spec), timeout=60)
    assert cluster.agent_daemon(spec, NODE).pid() == pid
    assert not (boot.store.directory / "kubelet-client.key.tmp").exists()


def _lease_renewed(spec: ClusterSpec) -> str:
    lease = api_json(spec, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}")
    return str(lease["spec"]["renewTime"])


def _metric(spec: ClusterSpec, name: str) -> float:
    admin = (spec.pki / "admin.crt", spec.pki / "admin.key")
    body = request(f"https://127.0.0.1:{spec.ports.kubelet}/metrics", cert=admin, timeout=10).body
    values = [
        float(line.split()[1]) for line in body.decode().splitlines() if line.startswith(f"{name} ")
    ]
    assert len(values) == 1, name
    return values[0]


def test_client_certificate_rotates_without_a_restart(boot: Boot) -> None:
    """The bootstrap certificate (SIGNING_DURATION) is due within ~1.5 min: the running agent
    asks for a new one with its node identity (approved as selfnodeclient), swaps the pem and
    its connections, and goes on renewing its Lease with the new certificate."""
    spec = boot.spec
    d = cluster.agent_daemon(spec, NODE)
    pid = d.pid()
    assert pid is not None, "the agent of the bootstrap test"
    first = _first_pair(boot)  # the bootstrap certificate (it may have been renewed already)
    assert first.not_after - first.not_before < datetime.timedelta(minutes=8)
    rotated = wait_for(
        lambda: (p := boot.store.load()) is not None and p.path != first.path and p,
        150,
        "a rotated client certificate",
    )
    assert d.pid() == pid  # no restart
    assert rotated.cert.public_key() != first.cert.public_key()  # a new key
    renewal = [c for c in _client_csrs(spec) if c["spec"]["username"] == f"system:node:{NODE}"]
    assert renewal and renewal[0]["metadata"]["name"].startswith("csr-")
    approved = next(c for c in renewal[0]["status"]["conditions"] if c["type"] == "Approved")
    assert approved["reason"] == "AutoApproved"
    assert first.path.exists()  # the old pem stays, as upstream keeps it
    before = _lease_renewed(spec)
    wait_for(lambda: _lease_renewed(spec) != before, 30, "a Lease renewal after rotation")
    assert _ready(spec)
    ttl = _metric(spec, "kubelet_certificate_manager_client_ttl_seconds")
    assert 0 < ttl <= 140
    assert "client certificate rotated" in d.log_file.read_text(errors="replace")


async def _who(client: ApiClient) -> str:
    review = await client.create(
        SELF_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    return str(review["status"]["userInfo"]["username"])


def test_use_tls_switches_the_identity_the_apiserver_sees(cluster_spec: ClusterSpec) -> None:
    spec = cluster_spec

    def context(who: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(spec.pki / "server-ca.crt"))
        ctx.load_cert_chain(str(spec.pki / f"{who}.crt"), str(spec.pki / f"{who}.key"))
        return ctx

    async def run() -> tuple[str, str]:
        client = ApiClient(spec.server, verify=context("admin"))
        try:
            before = await _who(client)
            await client.use_tls(context(f"node-{NODE}"))
            return before, await _who(client)
        finally:
            await client.close()

    assert asyncio.run(run()) == ("kubernetes-admin", f"system:node:{NODE}")
