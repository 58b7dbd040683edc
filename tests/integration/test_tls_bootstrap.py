"""serverTLSBootstrap on the real cluster: the agent asks for its :10250 certificate with a CSR
(signer kubernetes.io/kubelet-serving), serves nothing until an admin approves it (nobody
auto-approves serving CSRs upstream), then serves the issued certificate; kubectl logs works.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cluster import process
from cluster import up as cluster
from cluster.http import request
from cluster.spec import ClusterSpec
from kubelet.certs.store import CertStore

from .conftest import NODE
from .podutil import (
    Json,
    api_json,
    container,
    create_pod,
    cstatus,
    new_namespace,
    pod_body,
    wait_for,
    wait_pod,
)

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
SIGNER = "kubernetes.io/kubelet-serving"


@dataclass(frozen=True)
class Boot:
    spec: ClusterSpec
    ns: str


@pytest.fixture(scope="module")
def boot(cluster_spec: ClusterSpec) -> Iterator[Boot]:
    """The agent restarted with serverTLSBootstrap: true; restored to its usual config after."""
    spec = cluster_spec
    process.stop(cluster.agent_daemon(spec, NODE))
    _delete_serving_csrs(spec)
    cluster.start_node(spec, NODE, extra="serverTLSBootstrap: true")
    ns = new_namespace(spec)
    try:
        yield Boot(spec, ns)
    finally:
        cluster.api(spec, f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0", method="DELETE")
        wait_for(lambda: not api_json(spec, f"/api/v1/namespaces/{ns}/pods")["items"], 30, "gone")
        process.stop(cluster.agent_daemon(spec, NODE))
        _delete_serving_csrs(spec)


def _serving_csrs(spec: ClusterSpec) -> list[Json]:
    items: list[Json] = api_json(spec, CSRS)["items"]
    return [c for c in items if c["spec"]["signerName"] == SIGNER]


def _delete_serving_csrs(spec: ClusterSpec) -> None:
    for csr in _serving_csrs(spec):
        cluster.api(spec, f"{CSRS}/{csr['metadata']['name']}", method="DELETE")


def _handshake(spec: ClusterSpec) -> x509.Certificate:
    """The certificate :10250 presents, verified against the cluster's signing CA."""
    ctx = ssl.create_default_context(cafile=str(spec.pki / "client-ca.crt"))
    ctx.check_hostname = False  # the node's SANs are its own addresses, not loopback
    raw = socket.create_connection(("127.0.0.1", spec.ports.kubelet), timeout=5)
    with raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _handshake_fails(spec: ClusterSpec) -> bool:
    try:
        _handshake(spec)
    except (ssl.SSLError, OSError):
        return True
    return False


def _kubectl(spec: ClusterSpec, ns: str, *args: str) -> str:
    kubectl = cluster.find_binaries(build=False).k8s("kubectl")
    env = {**os.environ, "KUBECONFIG": str(spec.admin_kubeconfig)}
    r = subprocess.run(
        [str(kubectl), "-n", ns, *args], capture_output=True, env=env, timeout=60, check=False
    )
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode()


def test_serving_certificate_from_an_approved_csr(boot: Boot) -> None:
    spec = boot.spec
    csr = wait_for(lambda: _serving_csrs(spec), 30, "a kubelet-serving CSR")[0]
    assert csr["spec"]["username"] == f"system:node:{NODE}"
    assert sorted(csr["spec"]["usages"]) == ["digital signature", "server auth"]
    # nothing is served before the CSR is approved and issued
    assert _handshake_fails(spec)
    name = csr["metadata"]["name"]
    _approve(spec, csr)
    cert = wait_for(
        lambda: None if _handshake_fails(spec) else _handshake(spec), 60, "the issued cert served"
    )
    ca = x509.load_pem_x509_certificate((spec.pki / "client-ca.crt").read_bytes())
    assert cert.issuer == ca.subject
    subject = {a.oid: a.value for a in cert.subject}
    assert subject[NameOID.COMMON_NAME] == f"system:node:{NODE}"
    assert subject[NameOID.ORGANIZATION_NAME] == "system:nodes"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    node = api_json(spec, f"/api/v1/nodes/{NODE}")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert NODE in sans.get_values_for_type(x509.DNSName)
    assert addresses["InternalIP"] in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    issued = api_json(spec, f"{CSRS}/{name}")["status"]["certificate"]
    assert issued  # the same certificate the signer put in the CSR's status
    pki_dir = spec.directory / "nodes" / NODE / "root" / "pki"
    current = pki_dir / "kubelet-server-current.pem"
    assert current.is_symlink(), sorted(p.name for p in pki_dir.iterdir())
    target = current.resolve()
    assert target.name.startswith("kubelet-server-2") and target.stat().st_mode & 0o077 == 0
    admin = (spec.pki / "admin.crt", spec.pki / "admin.key")
    metrics = request(f"https://127.0.0.1:{spec.ports.kubelet}/metrics", cert=admin, timeout=10)
    ttl = [
        float(line.split()[1])
        for line in metrics.body.decode().splitlines()
        if line.startswith("kubelet_certificate_manager_server_ttl_seconds ")
    ]
    assert len(ttl) == 1 and 0 < ttl[0] <= 366 * 86400, ttl
    # the apiserver reaches the node API: kubectl logs goes through the CSR-issued certificate
    create_pod(spec, boot.ns, pod_body("tlslogs", [container("c", "echo hello-tls; sleep 3600")]))
    wait_pod(
        spec,
        boot.ns,
        "tlslogs",
        lambda p: "running" in cstatus(p, "c").get("state", {}),
        60,
        "running",
    )
    logs = wait_for(
        lambda: "hello-tls" in _kubectl(spec, boot.ns, "logs", "tlslogs"), 30, "kubectl logs"
    )
    assert logs


def _near_expiry_pair(spec: ClusterSpec) -> tuple[bytes, bytes]:
    """A serving pair from the cluster's signer at 90% of a one-hour life: due for rotation."""
    ca_cert = x509.load_pem_x509_certificate((spec.pki / "client-ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key(
        (spec.pki / "client-ca.key").read_bytes(), password=None
    )
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{NODE}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=54))
        .not_valid_after(now + datetime.timedelta(minutes=6))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _approve(spec: ClusterSpec, csr: Json) -> None:
    csr["status"] = {
        "conditions": [
            {
                "type": "Approved",
                "status": "True",
                "reason": "TestApprove",
                "message": "approved by the integration test",
            }
        ]
    }
    api_json(spec, f"{CSRS}/{csr['metadata']['name']}/approval", method="PUT", body=csr)


def test_a_certificate_past_its_rotation_deadline_is_renewed(boot: Boot) -> None:
    """A restarted agent finds a stored pair at 90% of its life: it serves it, and asks for a
    new one at once; once that is approved the new certificate is served."""
    spec = boot.spec
    process.stop(cluster.agent_daemon(spec, NODE))
    _delete_serving_csrs(spec)
    store = CertStore(spec.directory / "nodes" / NODE / "root" / "pki")
    old = store.save(*_near_expiry_pair(spec), datetime.datetime.now(datetime.UTC))
    cluster.start_node(spec, NODE, extra="serverTLSBootstrap: true")
    served = wait_for(
        lambda: None if _handshake_fails(spec) else _handshake(spec), 30, "the stored pair served"
    )
    assert served.serial_number == old.cert.serial_number
    csr = wait_for(lambda: _serving_csrs(spec), 30, "a renewal CSR")[0]
    _approve(spec, csr)
    new = wait_for(
        lambda: (c := _handshake(spec)).serial_number != old.cert.serial_number and c,
        60,
        "the renewed certificate served",
    )
    assert new.not_valid_after_utc > old.not_after + datetime.timedelta(days=1)
    assert store.current_path.resolve() != old.path
