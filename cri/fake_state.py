"""State of the fake CRI runtime: sandboxes, containers, images, the call log and injected faults.
Plain data and test controls only; the grpc handlers are in cri.fake_servicers. Tests only.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
import grpc.aio
from google.protobuf.message import Message

from cri import api
from cri._gen import api_pb2

_Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]

RUNTIME_NAME = "fake-runtime"
RUNTIME_VERSION = "0.1.0"
FAKE_IMAGE_SIZE = 1 << 20

METHODS: frozenset[str] = frozenset(
    method.name
    for service in api_pb2.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)
"""Every RPC the fake serves (all RPCs in cri/api.proto)."""


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One RPC received by the fake, in arrival order."""

    method: str
    request: Message


@dataclass(slots=True)
class FakeSandbox:
    """A sandbox as the fake runtime holds it."""

    config: api.PodSandboxConfig
    status: api.PodSandboxStatus


@dataclass(slots=True)
class FakeContainer:
    """A container as the fake runtime holds it."""

    sandbox_id: str
    config: api.ContainerConfig
    status: api.ContainerStatus


@dataclass(slots=True)
class _Fault:
    code: grpc.StatusCode | None
    message: str
    delay: float
    remaining: int | None


class RpcFailure(Exception):
    """Raised by a fake handler to end the call with a grpc status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def now_ns() -> int:
    return time.time_ns()


def new_id() -> str:
    return secrets.token_hex(32)


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def normalize_image_ref(ref: str) -> str:
    """Expand a short image reference: busybox -> docker.io/library/busybox:latest."""
    name, _, digest = ref.partition("@")
    first, slash, _ = name.partition("/")
    if not slash:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def _echo_exec(container_id: str, cmd: Sequence[str]) -> api.ExecSyncResponse:
    return api.ExecSyncResponse(stdout=(" ".join(cmd) + "\n").encode(), exit_code=0)


@dataclass
class FakeRuntime:
    """State, call log and fault plan of the fake; survives server restarts."""

    sandboxes: dict[str, FakeSandbox] = field(default_factory=dict)
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    images: dict[str, api.Image] = field(default_factory=dict)
    calls: list[FakeCall] = field(default_factory=list)
    pod_cidr: str = ""
    network_ready: bool = True
    stop_exit_code: int = 0
    """Exit code a container gets when StopContainer ends it."""
    exec_handler: Callable[[str, Sequence[str]], api.ExecSyncResponse] = _echo_exec
    """Computes ExecSync results; the default echoes the command."""
    _faults: dict[str, list[_Fault]] = field(default_factory=dict)
    _next_ip: int = 2

    # -- test controls -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        message: str = "injected failure",
        *,
        times: int | None = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail with `code` (None: until clear_faults)."""
        self._add_fault(method, _Fault(code=code, message=message, delay=0.0, remaining=times))

    def delay(self, method: str, seconds: float, *, times: int | None = 1) -> None:
        """Make the next `times` calls of `method` sleep `seconds` before answering."""
        self._add_fault(method, _Fault(code=None, message="", delay=seconds, remaining=times))

    def clear_faults(self) -> None:
        self._faults.clear()

    def _add_fault(self, method: str, fault: _Fault) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown CRI method {method!r}")
        self._faults.setdefault(method, []).append(fault)

    def methods(self) -> list[str]:
        """Names of the RPCs received so far, in order."""
        return [call.method for call in self.calls]

    def requests(self, method: str) -> list[Message]:
        """Requests received for one RPC, in order."""
        return [call.request for call in self.calls if call.method == method]

    def add_image(self, ref: str) -> api.Image:
        """Put an image into the store as if it had been pulled; return it."""
        name = normalize_image_ref(ref)
        existing = self.find_image(name)
        if existing is not None:
            return existing
        digest = hashlib.sha256(name.encode()).hexdigest()
        base = name.partition("@")[0]
        repo = base.rsplit(":", 1)[0] if ":" in base.rsplit("/", 1)[-1] else base
        image = api.Image(
            id=f"sha256:{digest}",
            repo_tags=[] if "@" in name else [name],
            repo_digests=[f"{repo}@sha256:{digest}"],
            size=FAKE_IMAGE_SIZE,
            spec=api.ImageSpec(image=f"sha256:{digest}"),
        )
        self.images[image.id] = image
        return image

    def find_image(self, ref: str) -> api.Image | None:
        """Look an image up by id, tag, digest or short name."""
        if not ref:
            return None
        for candidate in (ref, f"sha256:{ref}"):
            if candidate in self.images:
                return self.images[candidate]
        name = normalize_image_ref(ref)
        for image in self.images.values():
            if name in image.repo_tags or name in image.repo_digests or ref in image.repo_tags:
                return image
        return None

    def exit_container(
        self, container_id: str, *, exit_code: int = 0, reason: str = "", message: str = ""
    ) -> None:
        """Simulate the container's process ending on its own."""
        status = self.containers[container_id].status
        status.state = api.CONTAINER_EXITED
        status.finished_at = now_ns()
        status.exit_code = exit_code
        status.reason = reason or ("Completed" if exit_code == 0 else "Error")
        status.message = message

    # -- used by the servicers ---------------------------------------------------------------

    async def before_call(self, method: str, request: Message, context: _Ctx) -> None:
        self.calls.append(FakeCall(method=method, request=request))
        faults = self._faults.get(method)
        if not faults:
            return
        fault = faults[0]
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.pop(0)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.code is not None:
            await context.abort(fault.code, fault.message)

    def sandbox(self, sandbox_id: str) -> FakeSandbox:
        try:
            return self.sandboxes[sandbox_id]
        except KeyError:
            raise RpcFailure(
                grpc.StatusCode.NOT_FOUND, f"sandbox {sandbox_id!r} not found"
            ) from None

    def container(self, container_id: str) -> FakeContainer:
        try:
            return self.containers[container_id]
        except KeyError:
            msg = f"container {container_id!r} not found"
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, msg) from None

    def allocate_ip(self) -> str:
        ip = f"10.88.{self._next_ip // 256}.{self._next_ip % 256}"
        self._next_ip += 1
        return ip
