"""cri.errors: grpc status codes map onto typed exceptions whose text names method and object.
Pure mapping tests; no server involved.
"""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from cri.errors import (
    AlreadyExists,
    CRIError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
    error_for,
    from_rpc_error,
)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.UNIMPLEMENTED, Unimplemented),
        (grpc.StatusCode.FAILED_PRECONDITION, CRIError),
        (grpc.StatusCode.INTERNAL, CRIError),
        (grpc.StatusCode.UNKNOWN, CRIError),
    ],
)
def test_code_maps_to_class(code: grpc.StatusCode, cls: type[CRIError]) -> None:
    err = error_for(code, method="StartContainer", message="boom", object_id="abc")
    assert type(err) is cls
    assert isinstance(err, CRIError)
    assert (err.code, err.method, err.message, err.object_id) == (
        code,
        "StartContainer",
        "boom",
        "abc",
    )


def test_message_names_method_object_and_code() -> None:
    err = error_for(
        grpc.StatusCode.NOT_FOUND,
        method="ContainerStatus",
        message="no such container",
        object_kind="container",
        object_id="abc123",
    )
    assert str(err) == "CRI ContainerStatus (container abc123): NOT_FOUND: no such container"
    bare = error_for(grpc.StatusCode.INTERNAL, method="Version", message="oops")
    assert str(bare) == "CRI Version: INTERNAL: oops"


def test_temporary() -> None:
    assert error_for(grpc.StatusCode.UNAVAILABLE, method="m", message="").temporary
    assert error_for(grpc.StatusCode.DEADLINE_EXCEEDED, method="m", message="").temporary
    assert not error_for(grpc.StatusCode.NOT_FOUND, method="m", message="").temporary
    assert not error_for(grpc.StatusCode.INVALID_ARGUMENT, method="m", message="").temporary


def test_from_aio_rpc_error() -> None:
    rpc_error = grpc.aio.AioRpcError(
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="name reserved",
    )
    err = from_rpc_error(
        rpc_error, method="CreateContainer", object_kind="container", object_id="x"
    )
    assert isinstance(err, AlreadyExists)
    assert err.message == "name reserved"
    assert "CreateContainer (container x)" in str(err)


def test_from_rpc_error_without_status() -> None:
    err = from_rpc_error(grpc.RpcError("odd"), method="Status")
    assert type(err) is CRIError
    assert err.code == grpc.StatusCode.UNKNOWN
    assert err.message == "odd"
