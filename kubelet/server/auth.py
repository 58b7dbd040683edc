"""Who is calling :10250 and may they: client certificates, bearer tokens via TokenReview, and
SubjectAccessReview with upstream's nodes/<subresource> mapping, cached. Knows no routes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kube.apiserver import ApiError, JsonObject, Resource

log = logging.getLogger(__name__)

TOKENREVIEWS = Resource("tokenreviews", group="authentication.k8s.io", namespaced=False)
SUBJECTACCESSREVIEWS = Resource(
    "subjectaccessreviews", group="authorization.k8s.io", namespaced=False
)
VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
VERBS["DELETE"] = "delete"
# upstream: paths under these prefixes are authorized as nodes/<subresource>, the rest nodes/proxy
SUBRESOURCE_PATHS = (("/stats/", "stats"), ("/metrics", "metrics"), ("/logs/", "log"))
# upstream fine-grained authz (KubeletFineGrainedAuthz): checked first, nodes/proxy as fallback
FINE_GRAINED = (("/healthz", "healthz"), ("/pods", "pods"), ("/configz", "configz"))


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Attributes:
    """A SubjectAccessReview's resourceAttributes for a request to this node."""

    verb: str
    subresource: str
    node: str


class Creator(Protocol):
    async def create(self, resource: Resource, obj: JsonObject) -> JsonObject: ...


def is_subpath(path: str, prefix: str) -> bool:
    prefix = prefix.removesuffix("/")
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


def request_attributes(method: str, path: str, node: str) -> list[Attributes]:
    """The attribute sets to try in order; the request is allowed if any one is."""
    verb = VERBS.get(method.upper(), "")
    for prefix, sub in FINE_GRAINED:
        if is_subpath(path, prefix):
            return [Attributes(verb, sub, node), Attributes(verb, "proxy", node)]
    for prefix, sub in SUBRESOURCE_PATHS:
        if is_subpath(path, prefix):
            return [Attributes(verb, sub, node)]
    return [Attributes(verb, "proxy", node)]


def user_from_peercert(cert: dict[str, Any] | None) -> User | None:
    """A verified client certificate (ssl.getpeercert() form): CN is the user, O the groups."""
    if not cert:
        return None
    cn, orgs = "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return User(cn, tuple(orgs)) if cn else None


def sar_body(user: User, attrs: Attributes) -> JsonObject:
    spec: JsonObject = {
        "user": user.name,
        "groups": list(user.groups),
        "resourceAttributes": {
            "verb": attrs.verb,
            "version": "v1",
            "resource": "nodes",
            "subresource": attrs.subresource,
            "name": attrs.node,
        },
    }
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def forbidden_message(user: User, attrs: Attributes) -> str:
    return (
        f"Forbidden (user={user.name}, verb={attrs.verb}, resource=nodes, "
        f"subresource={attrs.subresource})"
    )


@dataclass
class TTLCache:
    """Decisions kept for a time that depends on the answer (allowed vs denied)."""

    clock: Callable[[], float] = time.monotonic
    entries: dict[str, tuple[float, Any]] = field(default_factory=dict)
    max_entries: int = 10000

    def get(self, key: str) -> Any:
        hit = self.entries.get(key)
        if hit is None or hit[0] < self.clock():
            self.entries.pop(key, None)
            return None
        return hit[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self.entries) >= self.max_entries:
            now = self.clock()
            self.entries = {k: v for k, v in self.entries.items() if v[0] >= now}
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
        self.entries[key] = (self.clock() + ttl, value)


class Authenticator:
    """Client certificate first, then a bearer token through TokenReview, then anonymous."""

    def __init__(
        self,
        api: Creator | None,
        *,
        webhook: bool,
        anonymous: bool,
        cache_ttl: float,
        cache: TTLCache | None = None,
    ) -> None:
        self.api = api
        self.webhook = webhook
        self.anonymous = anonymous
        self.cache_ttl = cache_ttl
        self.cache = cache or TTLCache()

    async def authenticate(
        self, peercert: dict[str, Any] | None, authorization: str | None
    ) -> User | None:
        user = user_from_peercert(peercert)
        if user is not None:
            return user
        if authorization and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
            if token and self.webhook and self.api is not None:
                return await self._token(token)
            return None
        return ANONYMOUS if self.anonymous else None

    async def _token(self, token: str) -> User | None:
        cached = self.cache.get(token)
        if cached is not None:
            result: User | None = cached or None
            return result
        body: JsonObject = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        assert self.api is not None
        try:
            status = (await self.api.create(TOKENREVIEWS, body)).get("status", {})
        except ApiError as e:
            log.warning("TokenReview failed: %s", e)
            return None
        user = None
        if status.get("authenticated"):
            info = status.get("user", {})
            extra = tuple((k, tuple(v)) for k, v in sorted((info.get("extra") or {}).items()))
            groups = tuple(info.get("groups") or ())
            user = User(info.get("username", ""), groups, str(info.get("uid", "")), extra)
        self.cache.put(token, user or False, self.cache_ttl)
        return user


class Authorizer:
    """AlwaysAllow, or Webhook: SubjectAccessReview per attribute set, cached by decision."""

    def __init__(
        self,
        api: Creator | None,
        *,
        mode: str,
        node: str,
        allowed_ttl: float,
        denied_ttl: float,
        cache: TTLCache | None = None,
    ) -> None:
        self.api = api
        self.mode = mode
        self.node = node
        self.allowed_ttl = allowed_ttl
        self.denied_ttl = denied_ttl
        self.cache = cache or TTLCache()

    async def authorize(self, user: User, method: str, path: str) -> str | None:
        """None when allowed, else the 403 message."""
        if self.mode == "AlwaysAllow":
            return None
        tries = request_attributes(method, path, self.node)
        for attrs in tries:
            if await self._review(user, attrs):
                return None
        return forbidden_message(user, tries[-1])

    async def _review(self, user: User, attrs: Attributes) -> bool:
        body = sar_body(user, attrs)
        key = json.dumps(body, sort_keys=True)
        cached = self.cache.get(key)
        if cached is not None:
            return bool(cached)
        if self.api is None:
            return False
        try:
            status = (await self.api.create(SUBJECTACCESSREVIEWS, body)).get("status", {})
        except ApiError as e:
            log.warning("SubjectAccessReview failed: %s", e)
            return False
        allowed = bool(status.get("allowed")) and not status.get("denied")
        self.cache.put(key, allowed, self.allowed_ttl if allowed else self.denied_ttl)
        return allowed
