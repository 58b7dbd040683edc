"""Typed CRI errors: one exception class per gRPC status code the agent branches on.
Owns only the mapping from grpc status codes; it must not retry, log or know Kubernetes objects.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExists",
    "CRIError",
    "DeadlineExceeded",
    "InvalidArgument",
    "NotFound",
    "Unavailable",
    "Unimplemented",
    "error_for",
    "from_rpc_error",
]


class CRIError(Exception):
    """A CRI call failed. Keeps the grpc status code, the RPC method and the runtime's message."""

    def __init__(
        self,
        *,
        code: grpc.StatusCode,
        method: str,
        message: str,
        object_kind: str = "",
        object_id: str = "",
    ) -> None:
        self.code = code
        self.method = method
        self.message = message
        self.object_kind = object_kind
        self.object_id = object_id
        target = " ".join(part for part in (object_kind, object_id) if part)
        where = f" ({target})" if target else ""
        super().__init__(f"CRI {method}{where}: {code.name}: {message}")

    @property
    def temporary(self) -> bool:
        """True when retrying the same call later may succeed (runtime down or slow)."""
        return self.code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.ABORTED,
        )


class NotFound(CRIError):
    """The sandbox, container or image named in the call does not exist."""


class AlreadyExists(CRIError):
    """The object to create exists already (for example a container name reused in a sandbox)."""


class Unavailable(CRIError):
    """The runtime is not reachable (down, restarting, or the socket is missing)."""


class DeadlineExceeded(CRIError):
    """The call did not finish before its deadline."""


class InvalidArgument(CRIError):
    """The runtime rejected the request as malformed."""


class Unimplemented(CRIError):
    """The runtime does not implement this RPC."""


_BY_CODE: dict[grpc.StatusCode, type[CRIError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def error_for(
    code: grpc.StatusCode,
    *,
    method: str,
    message: str,
    object_kind: str = "",
    object_id: str = "",
) -> CRIError:
    """Build the CRIError subclass that matches `code` (CRIError itself for unmapped codes)."""
    cls = _BY_CODE.get(code, CRIError)
    return cls(
        code=code, method=method, message=message, object_kind=object_kind, object_id=object_id
    )


def from_rpc_error(
    err: grpc.RpcError, *, method: str, object_kind: str = "", object_id: str = ""
) -> CRIError:
    """Translate a failed grpc call (sync or aio) into a CRIError naming the method and object."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    message = details if isinstance(details, str) and details else str(err)
    return error_for(
        code, method=method, message=message, object_kind=object_kind, object_id=object_id
    )
