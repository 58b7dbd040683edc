"""Service-account tokens for projected volumes: pod-bound TokenRequest bodies and renewal timing
(80% of lifetime or 24 h) on an injected clock. Sends nothing itself: the caller posts requests.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from kube.jsontypes import JsonMap, JsonObject
from kubelet.volumes.content import TokenSpec

MAX_TOKEN_AGE = 24 * 3600.0
REFRESH_FRACTION = 0.8
Clock = Callable[[], float]
Requester = Callable[[str, str, JsonMap], Awaitable[JsonMap]]
"""(namespace, service account, TokenRequest body) -> the TokenRequest the apiserver returned."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    issued_at: float
    """Epoch seconds: expirationTimestamp minus the granted expirationSeconds."""
    lifetime: float
    """The granted expirationSeconds (the apiserver may extend what was asked)."""

    @property
    def expires_at(self) -> float:
        return self.issued_at + self.lifetime


def token_request_body(spec: TokenSpec, pod_name: str, pod_uid: str) -> JsonObject:
    """A TokenRequest bound to the pod, for the audience (omitted: the apiserver's own)."""
    body_spec: JsonObject = {
        "expirationSeconds": spec.expiration_seconds,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": pod_uid},
    }
    if spec.audience:
        body_spec["audiences"] = [spec.audience]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": body_spec}


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def issued_from_response(resp: JsonMap, spec: TokenSpec, now: float) -> IssuedToken:
    status = resp.get("status") or {}
    token = str(status.get("token", ""))
    if not token:
        raise ValueError("TokenRequest returned no token")
    lifetime = float((resp.get("spec") or {}).get("expirationSeconds") or spec.expiration_seconds)
    expiry = status.get("expirationTimestamp")
    issued = _epoch(str(expiry)) - lifetime if expiry else now
    return IssuedToken(token=token, issued_at=issued, lifetime=lifetime)


def needs_refresh(tok: IssuedToken, now: float) -> bool:
    """Upstream's rule: expired, or 80% of the lifetime gone, or older than 24 h."""
    if now >= tok.expires_at:
        return True
    age = now - tok.issued_at
    return age >= REFRESH_FRACTION * tok.lifetime or age >= MAX_TOKEN_AGE


class TokenCache:
    """Tokens per (pod UID, token spec); renewed when due, the old one kept if renewal fails."""

    def __init__(self, request: Requester, *, clock: Clock = time.time) -> None:
        self._request = request
        self._clock = clock
        self._tokens: dict[tuple[str, TokenSpec], IssuedToken] = {}

    async def get(self, namespace: str, pod_name: str, pod_uid: str, spec: TokenSpec) -> str:
        key = (pod_uid, spec)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and not needs_refresh(cached, now):
            return cached.token
        body = token_request_body(spec, pod_name, pod_uid)
        try:
            resp = await self._request(namespace, spec.service_account, body)
            fresh = issued_from_response(resp, spec, now)
        except Exception:
            if cached is not None and now < cached.expires_at:
                return cached.token
            raise
        self._tokens[key] = fresh
        return fresh.token

    def due(self, pod_uid: str) -> bool:
        """Whether any token of the pod should be renewed now."""
        now = self._clock()
        return any(uid == pod_uid and needs_refresh(t, now) for (uid, _), t in self._tokens.items())

    def forget(self, pod_uid: str) -> None:
        for key in [k for k in self._tokens if k[0] == pod_uid]:
            del self._tokens[key]
