"""Authentication and authorization of :10250 requests with a fake apiserver: upstream's SAR
attribute mapping, certificate users, TokenReview, decision caching, AlwaysAllow."""

from __future__ import annotations

from typing import Any

from kube.apiserver import JsonObject, Resource
from kubelet.server.auth import (
    ANONYMOUS,
    Attributes,
    Authenticator,
    Authorizer,
    TTLCache,
    User,
    request_attributes,
    user_from_peercert,
)


class FakeApi:
    def __init__(self, allowed: set[tuple[str, str]] | None = None) -> None:
        self.allowed = allowed or set()
        self.calls: list[JsonObject] = []

    async def create(self, resource: Resource, obj: JsonObject) -> JsonObject:
        self.calls.append(obj)
        if resource.plural == "tokenreviews":
            ok = obj["spec"]["token"] == "good"
            user = {"username": "sa", "groups": ["g"], "uid": "u1"}
            return {"status": {"authenticated": ok, "user": user if ok else {}}}
        attrs = obj["spec"]["resourceAttributes"]
        allowed = (obj["spec"]["user"], attrs["subresource"]) in self.allowed
        return {"status": {"allowed": allowed}}


def test_attribute_mapping_follows_upstream() -> None:
    def subs(method: str, path: str) -> list[tuple[str, str]]:
        return [(a.verb, a.subresource) for a in request_attributes(method, path, "n1")]

    assert subs("GET", "/stats/summary") == [("get", "stats")]
    assert subs("GET", "/metrics") == [("get", "metrics")]
    assert subs("GET", "/metrics/resource") == [("get", "metrics")]
    assert subs("GET", "/metricsfoo") == [("get", "proxy")]
    assert subs("GET", "/logs/syslog") == [("get", "log")]
    assert subs("GET", "/containerLogs/ns/p/c") == [("get", "proxy")]
    assert subs("POST", "/exec/ns/p/c") == [("create", "proxy")]
    assert subs("PUT", "/x") == [("update", "proxy")]
    assert subs("DELETE", "/x") == [("delete", "proxy")]
    assert subs("GET", "/pods") == [("get", "pods"), ("get", "proxy")]
    assert subs("GET", "/healthz") == [("get", "healthz"), ("get", "proxy")]
    assert request_attributes("GET", "/x", "n1")[0] == Attributes("get", "proxy", "n1")


def test_user_from_certificate_subject() -> None:
    cert: dict[str, Any] = {
        "subject": ((("organizationName", "system:masters"),), (("commonName", "admin"),))
    }
    assert user_from_peercert(cert) == User("admin", ("system:masters",))
    assert user_from_peercert(None) is None
    assert user_from_peercert({}) is None


async def test_authentication_order_and_token_cache() -> None:
    api = FakeApi()
    authn = Authenticator(api, webhook=True, anonymous=False, cache_ttl=60)
    cert = {"subject": ((("commonName", "kube-apiserver"),),)}
    assert (await authn.authenticate(cert, "Bearer good")) == User("kube-apiserver")
    assert not api.calls
    user = await authn.authenticate(None, "Bearer good")
    assert user is not None and (user.name, user.groups, user.uid) == ("sa", ("g",), "u1")
    await authn.authenticate(None, "Bearer good")
    assert len(api.calls) == 1
    assert await authn.authenticate(None, "Bearer bad") is None
    assert await authn.authenticate(None, None) is None
    assert await authn.authenticate(None, "Basic abc") is None


async def test_anonymous_and_disabled_webhook() -> None:
    api = FakeApi()
    anon = Authenticator(api, webhook=False, anonymous=True, cache_ttl=60)
    assert await anon.authenticate(None, None) == ANONYMOUS
    assert await anon.authenticate(None, "Bearer good") is None
    assert not api.calls


async def test_authorizer_sar_cache_and_fallback() -> None:
    now = [0.0]
    api = FakeApi({("alice", "stats"), ("bob", "proxy")})
    authz = Authorizer(
        api,
        mode="Webhook",
        node="n1",
        allowed_ttl=300,
        denied_ttl=30,
        cache=TTLCache(clock=lambda: now[0]),
    )
    assert await authz.authorize(User("alice"), "GET", "/stats/summary") is None
    assert await authz.authorize(User("alice"), "GET", "/stats/summary") is None
    assert len(api.calls) == 1
    spec = api.calls[0]["spec"]
    assert spec["resourceAttributes"] == {
        "verb": "get",
        "version": "v1",
        "resource": "nodes",
        "subresource": "stats",
        "name": "n1",
    }
    denied = await authz.authorize(User("alice"), "POST", "/exec/a/b/c")
    assert denied is not None and "user=alice" in denied and "subresource=proxy" in denied
    assert await authz.authorize(User("bob"), "GET", "/pods") is None  # falls back to proxy
    calls = len(api.calls)
    await authz.authorize(User("alice"), "POST", "/exec/a/b/c")
    assert len(api.calls) == calls  # the denial is cached
    now[0] = 31
    await authz.authorize(User("alice"), "POST", "/exec/a/b/c")
    assert len(api.calls) == calls + 1


async def test_always_allow_asks_nobody() -> None:
    api = FakeApi()
    authz = Authorizer(api, mode="AlwaysAllow", node="n1", allowed_ttl=1, denied_ttl=1)
    assert await authz.authorize(ANONYMOUS, "POST", "/exec/a/b/c") is None
    assert not api.calls
