"""The executor's image pulls with imagePullSecrets: which credentials reach CRI PullImage, in
what order, and what a missing secret does. A stub image service stands in for the runtime.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import grpc

from cri import api
from cri.errors import CRIError
from kubelet import events as ev
from kubelet.pods.backoff import BackOff
from kubelet.pods.decode import pod_from_api
from kubelet.pods.executor import ERR_IMAGE_PULL, PodExecutor
from kubelet.pods.model import PullPolicy, Waiting

IMAGE = "localhost:5000/pause:testing"


class _Images:
    """PullImage that only lets user:password in, recording every attempt's credentials."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []

    async def pull_image(
        self,
        image: str,
        *,
        auth: api.AuthConfig | None = None,
        sandbox_config: api.PodSandboxConfig | None = None,
    ) -> str:
        user = (auth.username, auth.password) if auth is not None else ("", "")
        self.attempts.append(user)
        if user != ("user", "password"):
            raise CRIError(code=grpc.StatusCode.UNKNOWN, method="PullImage", message="401")
        return "sha256:pulled"


class _Recorder:
    def __init__(self) -> None:
        self.events: list[ev.PodEvent] = []

    def record(self, event: ev.PodEvent) -> None:
        self.events.append(event)


def _secret(cred: str) -> dict[str, Any]:
    auths = {"localhost:5000": {"auth": base64.b64encode(cred.encode()).decode()}}
    raw = json.dumps({"auths": auths}).encode()
    return {"data": {".dockerconfigjson": base64.b64encode(raw).decode()}}


SECRETS = {"wrong": _secret("user:nope"), "right": _secret("user:password")}


async def _lookup(namespace: str, name: str) -> dict[str, Any] | None:
    assert namespace == "team"
    return SECRETS.get(name)


async def _pull(tmp_path: Path, names: list[str]) -> tuple[str | Waiting, _Images, _Recorder]:
    images, recorder = _Images(), _Recorder()
    executor = PodExecutor(
        images,  # type: ignore[arg-type]
        recorder,  # type: ignore[arg-type]
        log_root="/logs",
        pods_dir=tmp_path,
        backoff=BackOff(),
        memory_capacity=1 << 30,
        secrets=_lookup,
    )
    body = {
        "metadata": {"name": "web", "namespace": "team", "uid": "u1"},
        "spec": {
            "containers": [{"name": "c", "image": IMAGE}],
            "imagePullSecrets": [{"name": n} for n in names],
        },
    }
    got = await executor.ensure_image(
        pod_from_api(body), IMAGE, PullPolicy.ALWAYS, api.PodSandboxConfig(), ""
    )
    return got, images, recorder


async def test_each_matching_credential_is_tried_until_one_works(tmp_path: Path) -> None:
    got, images, _ = await _pull(tmp_path, ["wrong", "right"])
    assert got == "sha256:pulled"
    assert images.attempts == [("user", "nope"), ("user", "password")]


async def test_without_secrets_the_pull_is_anonymous_and_fails(tmp_path: Path) -> None:
    got, images, _ = await _pull(tmp_path, [])
    assert isinstance(got, Waiting) and got.reason == ERR_IMAGE_PULL
    assert images.attempts == [("", "")]


async def test_a_missing_secret_is_reported_and_the_others_still_used(tmp_path: Path) -> None:
    got, images, recorder = await _pull(tmp_path, ["absent", "right"])
    assert got == "sha256:pulled"
    assert images.attempts == [("user", "password")]
    (event,) = [e for e in recorder.events if e.reason == ev.FAILED_TO_RETRIEVE_PULL_SECRET]
    assert event.type == ev.WARNING
    assert event.message == (
        "Unable to retrieve some image pull secrets (absent); "
        "attempting to pull the image may not succeed."
    )
