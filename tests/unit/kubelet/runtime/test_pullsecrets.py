"""imagePullSecrets: docker config parsing and upstream's keyring matching."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kubelet.pods.decode import pod_from_api
from kubelet.pods.model import Pod
from kubelet.runtime.pullsecrets import (
    PullSecretError,
    RegistryAuth,
    auths_from_secret,
    lookup,
    matches,
    normalize_key,
    repository,
    secret_names,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config_json(auths: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(json.dumps({"auths": auths}))},
    }


def test_the_e2e_private_registry_secret() -> None:
    # What upstream's e2e User1DockerSecret holds: auth is base64("user:password").
    secret = config_json({"localhost:5000": {"auth": "dXNlcjpwYXNzd29yZA=="}})
    (auth,) = auths_from_secret(secret)
    assert auth == RegistryAuth(key="localhost:5000", username="user", password="password")
    assert lookup("localhost:5000/pause:testing", [auth]) == [auth]
    assert lookup("localhost:5001/pause:testing", [auth]) == []
    assert lookup("registry.k8s.io/pause:3.10", [auth]) == []


def test_legacy_dockercfg_and_explicit_fields() -> None:
    cfg = {"https://reg.example.com/v1/": {"username": "u", "password": "p", "email": "x@y"}}
    secret = {"type": "kubernetes.io/dockercfg", "data": {".dockercfg": b64(json.dumps(cfg))}}
    assert auths_from_secret(secret) == [
        RegistryAuth(key="reg.example.com", username="u", password="p")
    ]


def test_secrets_without_docker_config_give_nothing_and_garbage_is_an_error() -> None:
    assert auths_from_secret({"data": {"token": b64("x")}}) == []
    with pytest.raises(PullSecretError):
        auths_from_secret({"data": {".dockerconfigjson": b64("not json")}})
    with pytest.raises(PullSecretError, match='"auth"'):
        auths_from_secret(config_json({"r.io": {"auth": b64("no-colon")}}))


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("busybox", "docker.io/library/busybox"),
        ("busybox:1.36", "docker.io/library/busybox"),
        ("user/app@sha256:abc", "docker.io/user/app"),
        ("localhost:5000/pause:testing", "localhost:5000/pause"),
        ("localhost/app", "localhost/app"),
        ("registry.k8s.io/e2e-test-images/agnhost:2.55", "registry.k8s.io/e2e-test-images/agnhost"),
    ],
)
def test_repository(image: str, repo: str) -> None:
    assert repository(image) == repo


def test_key_normalization() -> None:
    assert normalize_key("https://index.docker.io/v1/") == "index.docker.io"
    assert normalize_key("http://reg.io:5000/v2/team") == "reg.io:5000/team"
    assert normalize_key("reg.io/team/") == "reg.io/team/"


def test_matching_rules() -> None:
    assert matches("*.example.com", "eu.example.com/app")
    assert not matches("*.example.com", "a.eu.example.com/app"), "same number of labels"
    assert matches("reg.io/team", "reg.io/team/app")
    assert not matches("reg.io/team", "reg.io/other/app")
    assert not matches("reg.io:5000", "reg.io/app"), "ports must agree"


def test_more_specific_keys_first_and_docker_hub_default() -> None:
    host = RegistryAuth(key="reg.io", username="host")
    team = RegistryAuth(key="reg.io/team", username="team")
    assert [a.username for a in lookup("reg.io/team/app:1", [host, team])] == ["team", "host"]
    hub = RegistryAuth(key="index.docker.io", username="hub")
    assert lookup("busybox", [hub, host]) == [hub]
    assert lookup("reg.io/app", [hub]) == []


def test_secret_names() -> None:
    def pod(**spec: Any) -> Pod:
        containers = [{"name": "c", "image": "busybox"}]
        meta = {"name": "web", "namespace": "ns", "uid": "u1"}
        return pod_from_api({"metadata": meta, "spec": {"containers": containers, **spec}})

    refs = [{"name": "a"}, {}, {"name": ""}, {"name": "b"}]
    assert secret_names(pod(imagePullSecrets=refs)) == ["a", "b"]
    assert secret_names(pod()) == []
