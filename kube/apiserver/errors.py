"""Errors of apiserver calls, built from the apiserver's Status object (pure; no I/O).
Keeps code, reason, message and details for callers to branch on; must not retry or log.
"""

from __future__ import annotations

import json

from kube.jsontypes import JsonObject as JsonObject

_REASON_TEXT = {
    "NotFound": "not found",
    "AlreadyExists": "already exists",
    "Conflict": "conflict",
    "Gone": "gone",
    "Expired": "expired",
    "Forbidden": "forbidden",
    "Unauthorized": "unauthorized",
    "TooManyRequests": "too many requests",
    "Invalid": "invalid",
    "BadRequest": "bad request",
    "MethodNotAllowed": "method not allowed",
    "InternalError": "internal error",
    "ServiceUnavailable": "service unavailable",
    "Timeout": "timeout",
    "ConnectionError": "connection error",
}
# Reasons whose server message only restates the object and the reason.
_TERSE = frozenset({"NotFound", "AlreadyExists"})


class ApiError(Exception):
    """A failed apiserver call. `status` is the Status object (synthesised if the body was not)."""

    def __init__(
        self,
        *,
        code: int,
        reason: str,
        message: str,
        target: str = "",
        details: JsonObject | None = None,
        retry_after: float | None = None,
        status: JsonObject | None = None,
    ) -> None:
        self.code = code
        """HTTP status code (or the Status code of a watch ERROR event)."""
        self.reason = reason
        """Status reason: NotFound, Conflict, AlreadyExists, Expired, Forbidden, ..."""
        self.message = message
        """The apiserver's own message, unchanged."""
        self.target = target
        """What the call was about, e.g. `pods "web" in namespace "default"`."""
        self.details = details or {}
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After or details.retryAfterSeconds)."""
        self.status = status or {}
        super().__init__(self._text())

    def _text(self) -> str:
        text = _REASON_TEXT.get(self.reason) or self.reason or f"HTTP {self.code}"
        if self.message and (self.reason not in _TERSE or not self.target):
            text = f"{text}: {self.message}"
        return f"{self.target}: {text}" if self.target else text

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later unchanged (no connection, 429, 5xx)."""
        return self.code == 0 or self.code == 429 or self.code >= 500


class ApiConnectionError(ApiError):
    """No usable response: connect failed, the connection dropped, or a client-side timeout.
    `code` is 0 and `__cause__` holds the transport's exception.
    """

    def __init__(self, *, message: str, target: str = "") -> None:
        super().__init__(code=0, reason="ConnectionError", message=message, target=target)


class Unauthorized(ApiError):
    """401: the credentials were not accepted."""


class Forbidden(ApiError):
    """403: authenticated, but not allowed (RBAC, Node authorizer, admission)."""


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class Conflict(ApiError):
    """409 Conflict: the object changed since it was read (resourceVersion mismatch)."""


class AlreadyExists(ApiError):
    """409 AlreadyExists: a create named an object that already exists."""


class Gone(ApiError):
    """410: the resourceVersion (or continue token) is too old; list again."""


class TooManyRequests(ApiError):
    """429: throttled (API priority and fairness); wait `retry_after` seconds."""


class ServerError(ApiError):
    """5xx: the apiserver (or something behind it) failed; the call may be retried."""


_BY_CODE: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    429: TooManyRequests,
}


def error_class(code: int, reason: str) -> type[ApiError]:
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExists
    if code in _BY_CODE:
        return _BY_CODE[code]
    return ServerError if code >= 500 else ApiError


def _retry_after(header: str | None, details: JsonObject) -> float | None:
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass  # an HTTP date; the apiserver only sends seconds
    seconds = details.get("retryAfterSeconds")
    return float(seconds) if isinstance(seconds, int | float) else None


def from_status(
    status: JsonObject, *, code: int = 0, target: str = "", retry_after: str | None = None
) -> ApiError:
    """An ApiError (of the right subclass) from a Status object; `code` wins if given."""
    code = code or int(status.get("code") or 0)
    reason = str(status.get("reason") or "")
    raw_details = status.get("details")
    details: JsonObject = raw_details if isinstance(raw_details, dict) else {}
    cls = error_class(code, reason)
    if not reason and cls not in (ApiError, ServerError):
        reason = cls.__name__
    return cls(
        code=code,
        reason=reason,
        message=str(status.get("message") or ""),
        target=target,
        details=details,
        retry_after=_retry_after(retry_after, details),
        status=status,
    )


def from_response(
    code: int, body: bytes, *, target: str = "", retry_after: str | None = None
) -> ApiError:
    """An ApiError from an HTTP error response whose body may or may not be a Status."""
    status: JsonObject
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        status = parsed
    else:
        text = body.decode("utf-8", "replace").strip()[:500]
        status = {"kind": "Status", "status": "Failure", "code": code, "message": text}
    return from_status(status, code=code, target=target, retry_after=retry_after)
