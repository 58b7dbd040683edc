"""Service-account token requests and their renewal on an injected clock.
The apiserver is a fake callable; nothing sleeps.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from kubelet.volumes.content import TokenSpec
from kubelet.volumes.tokens import (
    IssuedToken,
    TokenCache,
    issued_from_response,
    needs_refresh,
    token_request_body,
)

SPEC = TokenSpec("default", "vault", 3600)


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_body_is_bound_to_the_pod() -> None:
    body = token_request_body(SPEC, "web", "u1")
    assert body == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": ["vault"],
            "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"},
        },
    }
    assert "audiences" not in token_request_body(TokenSpec("d", "", 600), "w", "u")["spec"]


def test_issued_time_comes_from_the_granted_expiry() -> None:
    resp = {
        "spec": {"expirationSeconds": 7200},
        "status": {"token": "t", "expirationTimestamp": _iso(1_000_000 + 7200)},
    }
    tok = issued_from_response(resp, SPEC, now=5)
    assert tok == IssuedToken("t", 1_000_000, 7200)


@pytest.mark.parametrize(
    ("lifetime", "age", "due"),
    [
        (3600, 2879, False),
        (3600, 2880, True),
        (3600, 4000, True),
        (365 * 86400, 86399, False),
        (365 * 86400, 86400, True),
    ],
)
def test_needs_refresh(lifetime: float, age: float, due: bool) -> None:
    assert needs_refresh(IssuedToken("t", 1000, lifetime), 1000 + age) is due


class FakeApi:
    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.calls = 0
        self.fail = False

    async def __call__(self, ns: str, sa: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls += 1
        if self.fail:
            raise ValueError("apiserver down")
        exp = body["spec"]["expirationSeconds"]
        return {
            "spec": {"expirationSeconds": exp},
            "status": {
                "token": f"tok{self.calls}",
                "expirationTimestamp": _iso(self.clock[0] + exp),
            },
        }


async def test_cache_renews_at_80_percent_and_keeps_old_on_failure() -> None:
    now = [1_000_000.0]
    api = FakeApi(now)
    cache = TokenCache(api, clock=lambda: now[0])
    assert await cache.get("ns", "web", "u1", SPEC) == "tok1"
    now[0] += 2000
    assert await cache.get("ns", "web", "u1", SPEC) == "tok1" and api.calls == 1
    assert not cache.due("u1")
    now[0] += 900
    assert cache.due("u1")
    assert await cache.get("ns", "web", "u1", SPEC) == "tok2"
    now[0] += 3000
    api.fail = True
    assert await cache.get("ns", "web", "u1", SPEC) == "tok2", "still valid: keep it"
    now[0] += 1000
    with pytest.raises(ValueError):
        await cache.get("ns", "web", "u1", SPEC)
    cache.forget("u1")
    assert not cache.due("u1")
