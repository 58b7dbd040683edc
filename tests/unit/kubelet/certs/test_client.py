"""open_client, the agent's one entry point: bootstrap first when a bootstrap kubeconfig is given,
no rotation loop unless rotateCertificates, and with it a loop whose every new pair swaps the
running apiserver client's TLS credentials (new connections present the new certificate).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.apiserver import load_kubeconfig
from kubelet.certs import bootstrap, csr
from kubelet.certs.client import ClientSetupError, open_client, with_pair
from kubelet.certs.manager import CertificateManager
from kubelet.certs.store import CLIENT, CertStore
from kubelet.config import KubeletConfiguration, RunConfig

from .signer import CA, T0, sign


def _config(tmp_path: Path, *, rotate: bool, kubeconfig: Path | None = None) -> RunConfig:
    kc = dataclasses.replace(KubeletConfiguration(), rotate_certificates=rotate)
    return RunConfig(
        kubelet=kc,
        node_name="node-1",
        kubeconfig=kubeconfig,
        root_dir=tmp_path,
        cert_dir=tmp_path / "pki",
    )


def _kubeconfig(tmp_path: Path, user: dict[str, Any]) -> Path:
    path = tmp_path / "kubelet.conf"
    doc = {
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": base64.b64encode(CA.cert_pem).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _cert_files(tmp_path: Path) -> dict[str, str]:
    key_pem = csr.new_key_pem()
    cert = sign(bootstrap.client_request("node-1", key_pem, named=False).csr_pem)
    (tmp_path / "node.crt").write_bytes(cert)
    (tmp_path / "node.key").write_bytes(key_pem)
    return {
        "client-certificate": str(tmp_path / "node.crt"),
        "client-key": str(tmp_path / "node.key"),
    }


async def test_no_kubeconfig_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClientSetupError, match="--kubeconfig is required"):
        await open_client(_config(tmp_path, rotate=False), on_expired=print)


async def test_without_rotation_there_is_no_loop(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path, _cert_files(tmp_path))
    api, manager = await open_client(
        _config(tmp_path, rotate=False, kubeconfig=kubeconfig), on_expired=print
    )
    assert manager is None
    await api.close()


async def test_rotation_without_a_client_certificate_is_off(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path, {"token": "abc"})
    api, manager = await open_client(
        _config(tmp_path, rotate=True, kubeconfig=kubeconfig), on_expired=print
    )
    assert manager is None
    await api.close()


async def test_each_new_pair_swaps_the_clients_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = _kubeconfig(tmp_path, _cert_files(tmp_path))
    api, manager = await open_client(
        _config(tmp_path, rotate=True, kubeconfig=kubeconfig), on_expired=print
    )
    assert isinstance(manager, CertificateManager)
    swaps: list[ssl.SSLContext] = []

    async def use_tls(verify: ssl.SSLContext) -> None:
        swaps.append(verify)

    monkeypatch.setattr(api, "use_tls", use_tls)
    try:
        initial = manager._initial
        assert initial is not None and initial.path == tmp_path / "node.crt"
        await manager.use(initial)
        assert swaps == []  # the pair the client was made with: nothing to swap
        store = CertStore(tmp_path / "pki", CLIENT)
        key_pem = csr.new_key_pem()
        cert = sign(bootstrap.client_request("node-1", key_pem, named=False).csr_pem)
        rotated = store.save(cert, key_pem, T0 + datetime.timedelta(hours=1))
        await manager.use(rotated)
        assert len(swaps) == 1
        loaded = swaps[0].get_ca_certs()
        assert loaded  # the kubeconfig's CA is still trusted
        assert manager.current is rotated
    finally:
        await api.close()


def test_with_pair_points_both_files_at_the_pem(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path, _cert_files(tmp_path))
    creds = load_kubeconfig(kubeconfig)
    key_pem = csr.new_key_pem()
    cert = sign(bootstrap.client_request("node-1", key_pem, named=False).csr_pem)
    pair = CertStore(tmp_path / "pki", CLIENT).save(cert, key_pem, T0)
    swapped = with_pair(creds, pair)
    assert swapped.client_cert_file == swapped.client_key_file == pair.path
    assert swapped.server == creds.server and swapped.ca_data == creds.ca_data
    inline = dataclasses.replace(
        creds, client_cert_data=cert, client_key_data=key_pem, client_cert_file=None
    )
    assert with_pair(inline, bootstrap.credentials_pair(inline)) is inline
