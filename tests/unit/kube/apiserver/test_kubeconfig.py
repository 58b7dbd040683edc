"""Kubeconfig loading: current-context, files and inline data, and errors naming file and field.
Uses throw-away certificates in tmp_path; opens no connections.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.pki import issue, make_ca
from kube.apiserver.kubeconfig import KubeconfigError, load_kubeconfig, ssl_context


def write(path: Path, *, cluster: dict[str, Any], user: dict[str, Any], **top: Any) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "ctx", "context": {"cluster": "c", "user": "u"}},
            {"name": "other", "context": {"cluster": "missing", "user": "u"}},
        ],
        "current-context": "ctx",
        **top,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, bytes]:
    ca = make_ca("test-ca")
    leaf = issue(ca, common_name="system:node:n1", organizations=("system:nodes",), client=True)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "n.crt").write_bytes(leaf.cert_pem)
    (tmp_path / "n.key").write_bytes(leaf.key_pem)
    return {"ca": ca.cert_pem, "cert": leaf.cert_pem, "key": leaf.key_pem}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_files_relative_to_kubeconfig(tmp_path: Path, pki: dict[str, bytes]) -> None:
    path = write(
        tmp_path / "kc",
        cluster={"server": "https://127.0.0.1:6443/", "certificate-authority": "ca.crt"},
        user={"client-certificate": "n.crt", "client-key": str(tmp_path / "n.key")},
    )
    creds = load_kubeconfig(path)
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.ca_file == tmp_path / "ca.crt"
    assert creds.client_cert_file == tmp_path / "n.crt"
    assert creds.source == path
    ctx = ssl_context(creds)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1


def test_inline_data_and_token(tmp_path: Path, pki: dict[str, bytes]) -> None:
    path = write(
        tmp_path / "kc",
        cluster={"server": "https://h:1", "certificate-authority-data": b64(pki["ca"])},
        user={
            "client-certificate-data": b64(pki["cert"]),
            "client-key-data": b64(pki["key"]),
            "token": "abc",
        },
    )
    creds = load_kubeconfig(path)
    assert creds.ca_data == pki["ca"] and creds.client_key_data == pki["key"]
    assert creds.token == "abc"
    ctx = ssl_context(creds)  # loads the chain through a private temp dir
    assert len(ctx.get_ca_certs()) == 1


def test_token_file_and_insecure(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("s3cret\n")
    path = write(
        tmp_path / "kc",
        cluster={"server": "https://h:1", "insecure-skip-tls-verify": True},
        user={"tokenFile": "tok"},
    )
    creds = load_kubeconfig(path)
    assert creds.token == "s3cret" and creds.insecure_skip_tls_verify
    ctx = ssl_context(creds)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


@pytest.mark.parametrize(
    ("cluster", "user", "top", "context", "match"),
    [
        ({}, {}, {}, None, r'kc: cluster "c": server is missing'),
        ({"server": "https://h"}, {}, {"current-context": ""}, None, "current-context is not set"),
        ({"server": "https://h"}, {}, {}, "nope", r'kc: context "nope" not found in "contexts"'),
        ({"server": "https://h"}, {}, {}, "other", r'kc: cluster "missing" not found'),
        (
            {"server": "https://h"},
            {"client-certificate-data": "Zm9v"},
            {},
            None,
            r'kc: user "u": client-key\(-data\) is missing',
        ),
        (
            {"server": "https://h"},
            {"client-key": "nokey.pem"},
            {},
            None,
            r'kc: user "u": client-key .*nokey.pem.* does not exist',
        ),
        (
            {"server": "https://h", "certificate-authority-data": "!!"},
            {},
            {},
            None,
            r'kc: cluster "c": certificate-authority-data is not valid base64',
        ),
        ({"server": "http://h"}, {"token": "t"}, {}, None, "must not be sent over http://h"),
    ],
)
def test_errors_name_file_and_field(
    tmp_path: Path,
    cluster: dict[str, Any],
    user: dict[str, Any],
    top: dict[str, Any],
    context: str | None,
    match: str,
) -> None:
    path = write(tmp_path / "kc", cluster=cluster, user=user, **top)
    with pytest.raises(KubeconfigError, match=match):
        load_kubeconfig(path, context=context)


def test_unreadable_or_not_a_map(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        load_kubeconfig(tmp_path / "absent")
    (tmp_path / "list").write_text("- a\n")
    with pytest.raises(KubeconfigError, match="expected a YAML map"):
        load_kubeconfig(tmp_path / "list")
