"""TLS bootstrap without an apiserver: when it runs (missing, unusable or expired kubeconfig), the
key kept across tries, the certificate stored as kubelet-client-<time>.pem + -current.pem, the
kubeconfig written as upstream writes it, and a valid current pem reused instead of a new CSR.
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.apiserver import Credentials, load_kubeconfig
from kubelet.certs import bootstrap, csr
from kubelet.certs.bootstrap import BootstrapError, load_client_cert
from kubelet.certs.store import CLIENT, CertStore

from .signer import CA, T0, FakeSigner, sign

NOW = T0 + datetime.timedelta(minutes=1)
TOKEN = "abcdef.0123456789abcdef"


def _bootstrap_kubeconfig(path: Path, *, ca_file: Path | None = None) -> Path:
    cluster: dict[str, Any] = {"server": "https://198.18.1.254:6443"}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    else:
        cluster["certificate-authority-data"] = base64.b64encode(CA.cert_pem).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": cluster}],
        "users": [{"name": "tls-bootstrap-token-user", "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": "tls-bootstrap-token-user@kubernetes",
                "context": {"cluster": "kubernetes", "user": "tls-bootstrap-token-user"},
            }
        ],
        "current-context": "tls-bootstrap-token-user@kubernetes",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


class Signers:
    """client_for: one FakeSigner per bootstrap, remembering the credentials it was given."""

    def __init__(self, **kw: Any) -> None:
        self.kw = kw
        self.made: list[tuple[Credentials, FakeSigner]] = []

    def __call__(self, creds: Credentials) -> FakeSigner:
        signer = FakeSigner(**self.kw)
        self.made.append((creds, signer))
        return signer


async def _bootstrap(tmp_path: Path, signers: Signers, **kw: Any) -> Path:
    kubeconfig = tmp_path / "etc" / "kubelet.conf"
    await load_client_cert(
        kubeconfig=kubeconfig,
        bootstrap_kubeconfig=kw.pop("bootstrap", None)
        or _bootstrap_kubeconfig(tmp_path / "bootstrap-kubelet.conf"),
        cert_dir=tmp_path / "pki",
        node="node-1",
        now=lambda: kw.get("now", NOW),
        wait=5,
        client_for=signers,
    )
    return kubeconfig


async def test_bootstrap_gets_a_certificate_and_writes_the_kubeconfig(tmp_path: Path) -> None:
    signers = Signers(start=T0)
    kubeconfig = await _bootstrap(tmp_path, signers)
    creds, signer = signers.made[0]
    assert creds.token == TOKEN  # the CSR was made with the bootstrap credentials
    ((name, obj),) = signer.csrs.items()
    assert name.startswith("node-csr-")
    assert obj["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    pki = tmp_path / "pki"
    current = pki / "kubelet-client-current.pem"
    assert current.is_symlink()
    assert current.resolve().name == "kubelet-client-2026-11-23-12-01-00.pem"
    assert current.resolve().stat().st_mode & 0o777 == 0o600
    assert not (pki / bootstrap.TMP_KEY).exists()
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(kubeconfig.read_text())
    assert doc["current-context"] == "default-context"
    assert doc["contexts"] == [
        {
            "name": "default-context",
            "context": {
                "cluster": "default-cluster",
                "namespace": "default",
                "user": "default-auth",
            },
        }
    ]
    assert doc["clusters"][0]["name"] == "default-cluster"
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://198.18.1.254:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == CA.cert_pem
    assert doc["users"] == [
        {
            "name": "default-auth",
            "user": {"client-certificate": str(current), "client-key": str(current)},
        }
    ]
    loaded = load_kubeconfig(kubeconfig)
    assert loaded.client_cert_file == loaded.client_key_file == current
    assert loaded.token is None


async def test_a_ca_file_stays_a_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(CA.cert_pem)
    boot = _bootstrap_kubeconfig(tmp_path / "b.conf", ca_file=ca)
    kubeconfig = await _bootstrap(tmp_path, Signers(start=T0), bootstrap=boot)
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    assert cluster == {"server": "https://198.18.1.254:6443", "certificate-authority": str(ca)}


async def test_a_valid_kubeconfig_or_current_pem_means_no_new_csr(tmp_path: Path) -> None:
    signers = Signers(start=T0)
    kubeconfig = await _bootstrap(tmp_path, signers)
    first = kubeconfig.read_bytes()
    await _bootstrap(tmp_path, signers)  # kubeconfig valid: nothing to do
    assert len(signers.made) == 1 and kubeconfig.read_bytes() == first
    kubeconfig.unlink()  # the kubeconfig lost, the pem kept: reused, the kubeconfig rewritten
    await _bootstrap(tmp_path, signers)
    assert len(signers.made) == 1 and kubeconfig.read_bytes() == first


async def test_an_expired_certificate_is_bootstrapped_again(tmp_path: Path) -> None:
    signers = Signers(start=T0, hours=1)
    kubeconfig = await _bootstrap(tmp_path, signers)
    later = T0 + datetime.timedelta(hours=2)
    assert not bootstrap.kubeconfig_still_valid(kubeconfig, later)
    signers.kw["start"] = later
    await _bootstrap(tmp_path, signers, now=later)
    assert len(signers.made) == 2
    pair = CertStore(tmp_path / "pki", CLIENT).load()
    assert pair is not None and pair.not_before == later


def test_kubeconfig_validity(tmp_path: Path) -> None:
    assert not bootstrap.kubeconfig_still_valid(tmp_path / "missing.conf", NOW)
    token_only = _bootstrap_kubeconfig(tmp_path / "token.conf")
    assert not bootstrap.kubeconfig_still_valid(token_only, NOW)  # no certificate: bootstrap
    junk = tmp_path / "junk.conf"
    junk.write_text("clusters: [")
    assert not bootstrap.kubeconfig_still_valid(junk, NOW)


async def test_the_key_is_kept_until_the_csr_is_issued(tmp_path: Path) -> None:
    """A bootstrap that fails keeps its key: the retry names the same CSR (upstream)."""
    with pytest.raises(BootstrapError, match=r"node-csr-\S+ was denied: Nope, no way"):
        await _bootstrap(tmp_path, Signers(deny=True))
    kept = (tmp_path / "pki" / bootstrap.TMP_KEY).read_bytes()
    assert bootstrap.bootstrap_key(tmp_path / "pki") == kept
    with pytest.raises(BootstrapError, match=r"node-csr-\S+ not issued within 0s"):
        await load_client_cert(
            kubeconfig=tmp_path / "k.conf",
            bootstrap_kubeconfig=_bootstrap_kubeconfig(tmp_path / "b.conf"),
            cert_dir=tmp_path / "pki",
            node="node-1",
            now=lambda: NOW,
            wait=0.01,
            client_for=Signers(never=True),
        )
    assert bootstrap.bootstrap_key(tmp_path / "pki") == kept
    (tmp_path / "pki" / bootstrap.TMP_KEY).write_text("garbage")
    assert bootstrap.bootstrap_key(tmp_path / "pki") != kept


async def test_an_unreachable_apiserver_is_retried_then_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "REACH_PAUSE", 0.0)
    signer = FakeSigner(unreachable=1, start=T0)
    store = CertStore(tmp_path, CLIENT)
    pair = await bootstrap.request_client_cert(
        signer, node="node-1", store=store, now=lambda: NOW, reach=30
    )
    assert pair.path == store.current_path.resolve() and signer.creates == 1
    monkeypatch.setattr(bootstrap, "REACH_WAIT", 0.0)
    with pytest.raises(BootstrapError, match="apiserver unreachable"):
        await load_client_cert(
            kubeconfig=tmp_path / "k.conf",
            bootstrap_kubeconfig=_bootstrap_kubeconfig(tmp_path / "b.conf"),
            cert_dir=tmp_path / "pki2",
            node="node-1",
            now=lambda: NOW,
            client_for=lambda creds: FakeSigner(unreachable=10**6),
        )


async def test_a_missing_bootstrap_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match=r"unable to load bootstrap kubeconfig: .*nope\.conf"):
        await load_client_cert(
            kubeconfig=tmp_path / "k.conf",
            bootstrap_kubeconfig=tmp_path / "nope.conf",
            cert_dir=tmp_path / "pki",
            node="node-1",
        )


def test_credentials_pair_reads_files_or_inline_data(tmp_path: Path) -> None:
    key_pem = csr.new_key_pem()
    cert_pem = sign(bootstrap.client_request("node-1", key_pem, named=False).csr_pem)
    inline = Credentials(
        server="https://x", client_cert_data=cert_pem, client_key_data=key_pem, source=tmp_path
    )
    assert bootstrap.credentials_pair(inline).path == tmp_path
    (tmp_path / "c.crt").write_bytes(cert_pem)
    (tmp_path / "c.key").write_bytes(key_pem)
    files = Credentials(
        server="https://x", client_cert_file=tmp_path / "c.crt", client_key_file=tmp_path / "c.key"
    )
    assert bootstrap.credentials_pair(files).cert.serial_number == (
        bootstrap.credentials_pair(inline).cert.serial_number
    )
