"""Async CRI client on grpc.aio over a unix socket: one typed method per runtime.v1 RPC we use.
Owns channels, deadlines, error translation and readiness; it must not know Kubernetes objects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

import grpc
import grpc.aio

from cri import api
from cri._gen import api_pb2_grpc
from cri.channel import MAX_MESSAGE_BYTES, Connection, channel_options, grpc_target
from cri.errors import DeadlineExceeded, Unavailable, from_rpc_error

__all__ = ["MAX_MESSAGE_BYTES", "Observe", "RuntimeClient", "Timeouts", "grpc_target"]

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
Observe = Callable[[str, float, bool], None]
"""Called after every CRI call with (method, seconds taken, succeeded); must not raise."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines (seconds) applied to CRI calls; each method also takes a `deadline=` override."""

    default: float = 10.0
    """Every call not listed below."""
    pull_image: float = 120.0
    """PullImage: registries are slow."""
    exec_sync: float = 240.0
    """ExecSync without its own timeout (timeout=0 means the command may run forever)."""
    exec_sync_margin: float = 10.0
    """ExecSync with a timeout: the deadline is the command's timeout plus this margin."""


def _image_spec(image: str | api.ImageSpec) -> api.ImageSpec:
    return api.ImageSpec(image=image) if isinstance(image, str) else image


class RuntimeClient:
    """Client for the RuntimeService and ImageService of one runtime.

    Create it inside the running event loop; close it with `await close()` or `async with`.
    Every method raises a cri.errors.CRIError subclass when the call fails. The channel
    reconnects by itself after the runtime restarts (see cri.channel.Connection);
    `wait_ready()` waits until the runtime answers.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        image_endpoint: str | None = None,
        timeouts: Timeouts | None = None,
        reconnect_backoff_initial: float = 0.1,
        reconnect_backoff_max: float = 2.0,
        observe: Observe | None = None,
    ) -> None:
        self.observe = observe
        """Optional metrics hook (the agent passes one; cri/ knows no metrics library)."""
        self.target = grpc_target(endpoint)
        self.image_target = grpc_target(image_endpoint) if image_endpoint else self.target
        self.timeouts = timeouts or Timeouts()
        options = channel_options(reconnect_backoff_initial, reconnect_backoff_max)
        self._conn = Connection(self.target, options)
        self._image_conn = (
            self._conn
            if self.image_target == self.target
            else Connection(self.image_target, options)
        )

    @property
    def _runtime(self) -> api_pb2_grpc.RuntimeServiceAsyncStub:
        return api_pb2_grpc.RuntimeServiceStub(self._conn.channel())

    @property
    def _images(self) -> api_pb2_grpc.ImageServiceAsyncStub:
        return api_pb2_grpc.ImageServiceStub(self._image_conn.channel())

    async def close(self) -> None:
        """Close the channel(s); calls in flight are cancelled, later calls fail."""
        await self._conn.close()
        if self._image_conn is not self._conn:
            await self._image_conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self,
        method: str,
        rpc: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        deadline: float | None,
        default: float | None = None,
        kind: str = "",
        obj: str = "",
    ) -> _Resp:
        if deadline is None:
            deadline = default if default is not None else self.timeouts.default
        start = time.monotonic()
        try:
            response = await rpc(request, timeout=deadline)
        except grpc.aio.AioRpcError as err:
            if self.observe is not None:
                self.observe(method, time.monotonic() - start, False)
            raise from_rpc_error(err, method=method, object_kind=kind, object_id=obj) from err
        if self.observe is not None:
            self.observe(method, time.monotonic() - start, True)
        return response

    # -- readiness ---------------------------------------------------------------------------

    async def wait_ready(
        self,
        timeout: float,  # noqa: ASYNC109 (a polling budget, not a cancel scope)
        *,
        interval: float = 0.05,
    ) -> api.VersionResponse:
        """Poll Version until the runtime answers; raise Unavailable if not ready within timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                return await self._call(
                    "Version",
                    self._runtime.Version,
                    api.VersionRequest(version="v1"),
                    deadline=max(0.001, min(remaining, self.timeouts.default)),
                )
            except (Unavailable, DeadlineExceeded) as err:
                if loop.time() + interval >= deadline:
                    raise Unavailable(
                        code=grpc.StatusCode.UNAVAILABLE,
                        method="Version",
                        message=f"runtime at {self.target} not ready within {timeout}s: {err}",
                    ) from err
                await asyncio.sleep(interval)

    # -- RuntimeService: runtime -------------------------------------------------------------

    async def version(
        self, *, api_version: str = "v1", deadline: float | None = None
    ) -> api.VersionResponse:
        request = api.VersionRequest(version=api_version)
        return await self._call("Version", self._runtime.Version, request, deadline=deadline)

    async def status(
        self, *, verbose: bool = False, deadline: float | None = None
    ) -> api.StatusResponse:
        request = api.StatusRequest(verbose=verbose)
        return await self._call("Status", self._runtime.Status, request, deadline=deadline)

    async def update_runtime_config(self, *, pod_cidr: str, deadline: float | None = None) -> None:
        request = api.UpdateRuntimeConfigRequest(
            runtime_config=api.RuntimeConfig(network_config=api.NetworkConfig(pod_cidr=pod_cidr))
        )
        rpc = self._runtime.UpdateRuntimeConfig
        await self._call("UpdateRuntimeConfig", rpc, request, deadline=deadline)

    # -- RuntimeService: sandboxes -----------------------------------------------------------

    async def run_pod_sandbox(
        self,
        config: api.PodSandboxConfig,
        *,
        runtime_handler: str = "",
        deadline: float | None = None,
    ) -> str:
        """Create and start a sandbox; return its id."""
        request = api.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        name = f"{config.metadata.namespace}/{config.metadata.name}"
        response = await self._call(
            "RunPodSandbox",
            self._runtime.RunPodSandbox,
            request,
            deadline=deadline,
            kind="sandbox",
            obj=name,
        )
        return response.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str, *, deadline: float | None = None) -> None:
        request = api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call(
            "StopPodSandbox",
            self._runtime.StopPodSandbox,
            request,
            deadline=deadline,
            kind="sandbox",
            obj=sandbox_id,
        )

    async def remove_pod_sandbox(self, sandbox_id: str, *, deadline: float | None = None) -> None:
        request = api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call(
            "RemovePodSandbox",
            self._runtime.RemovePodSandbox,
            request,
            deadline=deadline,
            kind="sandbox",
            obj=sandbox_id,
        )

    async def pod_sandbox_status(
        self, sandbox_id: str, *, verbose: bool = False, deadline: float | None = None
    ) -> api.PodSandboxStatusResponse:
        request = api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        return await self._call(
            "PodSandboxStatus",
            self._runtime.PodSandboxStatus,
            request,
            deadline=deadline,
            kind="sandbox",
            obj=sandbox_id,
        )

    async def list_pod_sandbox(
        self, *, filter: api.PodSandboxFilter | None = None, deadline: float | None = None
    ) -> list[api.PodSandbox]:
        request = api.ListPodSandboxRequest(filter=filter)
        rpc = self._runtime.ListPodSandbox
        response = await self._call("ListPodSandbox", rpc, request, deadline=deadline)
        return list(response.items)

    # -- RuntimeService: containers ----------------------------------------------------------

    async def create_container(
        self,
        sandbox_id: str,
        config: api.ContainerConfig,
        sandbox_config: api.PodSandboxConfig,
        *,
        deadline: float | None = None,
    ) -> str:
        """Create a container in a sandbox; return its id."""
        request = api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
        )
        response = await self._call(
            "CreateContainer",
            self._runtime.CreateContainer,
            request,
            deadline=deadline,
            kind="container",
            obj=f"{config.metadata.name} in sandbox {sandbox_id}",
        )
        return response.container_id

    async def start_container(self, container_id: str, *, deadline: float | None = None) -> None:
        request = api.StartContainerRequest(container_id=container_id)
        await self._call(
            "StartContainer",
            self._runtime.StartContainer,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )

    async def stop_container(
        self, container_id: str, *, grace_seconds: int, deadline: float | None = None
    ) -> None:
        """Stop with SIGTERM, then SIGKILL after grace_seconds; the deadline includes the grace."""
        request = api.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        await self._call(
            "StopContainer",
            self._runtime.StopContainer,
            request,
            deadline=deadline,
            default=self.timeouts.default + max(0, grace_seconds),
            kind="container",
            obj=container_id,
        )

    async def remove_container(self, container_id: str, *, deadline: float | None = None) -> None:
        request = api.RemoveContainerRequest(container_id=container_id)
        await self._call(
            "RemoveContainer",
            self._runtime.RemoveContainer,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )

    async def list_containers(
        self, *, filter: api.ContainerFilter | None = None, deadline: float | None = None
    ) -> list[api.Container]:
        request = api.ListContainersRequest(filter=filter)
        rpc = self._runtime.ListContainers
        response = await self._call("ListContainers", rpc, request, deadline=deadline)
        return list(response.containers)

    async def container_status(
        self, container_id: str, *, verbose: bool = False, deadline: float | None = None
    ) -> api.ContainerStatusResponse:
        request = api.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return await self._call(
            "ContainerStatus",
            self._runtime.ContainerStatus,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )

    async def update_container_resources(
        self,
        container_id: str,
        *,
        linux: api.LinuxContainerResources | None = None,
        annotations: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> None:
        request = api.UpdateContainerResourcesRequest(
            container_id=container_id, linux=linux, annotations=annotations
        )
        await self._call(
            "UpdateContainerResources",
            self._runtime.UpdateContainerResources,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )

    async def reopen_container_log(
        self, container_id: str, *, deadline: float | None = None
    ) -> None:
        request = api.ReopenContainerLogRequest(container_id=container_id)
        await self._call(
            "ReopenContainerLog",
            self._runtime.ReopenContainerLog,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )

    # -- RuntimeService: exec, attach, port-forward ------------------------------------------

    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout_seconds: int = 0,
        deadline: float | None = None,
    ) -> api.ExecSyncResponse:
        """Run cmd in the container and wait; timeout_seconds=0 lets the command run unbounded."""
        request = api.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout_seconds)
        if timeout_seconds > 0:
            default = timeout_seconds + self.timeouts.exec_sync_margin
        else:
            default = self.timeouts.exec_sync
        return await self._call(
            "ExecSync",
            self._runtime.ExecSync,
            request,
            deadline=deadline,
            default=default,
            kind="container",
            obj=container_id,
        )

    async def exec(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        deadline: float | None = None,
    ) -> str:
        """Prepare a streaming exec; return the URL the runtime's streaming server serves it on."""
        request = api.ExecRequest(
            container_id=container_id, cmd=cmd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr
        )
        response = await self._call(
            "Exec",
            self._runtime.Exec,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )
        return response.url

    async def attach(
        self,
        container_id: str,
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        deadline: float | None = None,
    ) -> str:
        """Prepare a streaming attach; return its URL."""
        request = api.AttachRequest(
            container_id=container_id, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr
        )
        response = await self._call(
            "Attach",
            self._runtime.Attach,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )
        return response.url

    async def port_forward(
        self, sandbox_id: str, ports: Sequence[int], *, deadline: float | None = None
    ) -> str:
        """Prepare a streaming port-forward into a sandbox; return its URL."""
        request = api.PortForwardRequest(pod_sandbox_id=sandbox_id, port=ports)
        response = await self._call(
            "PortForward",
            self._runtime.PortForward,
            request,
            deadline=deadline,
            kind="sandbox",
            obj=sandbox_id,
        )
        return response.url

    # -- RuntimeService: stats ---------------------------------------------------------------

    async def container_stats(
        self, container_id: str, *, deadline: float | None = None
    ) -> api.ContainerStats:
        request = api.ContainerStatsRequest(container_id=container_id)
        response = await self._call(
            "ContainerStats",
            self._runtime.ContainerStats,
            request,
            deadline=deadline,
            kind="container",
            obj=container_id,
        )
        return response.stats

    async def list_container_stats(
        self, *, filter: api.ContainerStatsFilter | None = None, deadline: float | None = None
    ) -> list[api.ContainerStats]:
        request = api.ListContainerStatsRequest(filter=filter)
        rpc = self._runtime.ListContainerStats
        response = await self._call("ListContainerStats", rpc, request, deadline=deadline)
        return list(response.stats)

    async def pod_sandbox_stats(
        self, sandbox_id: str, *, deadline: float | None = None
    ) -> api.PodSandboxStats:
        request = api.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)
        response = await self._call(
            "PodSandboxStats",
            self._runtime.PodSandboxStats,
            request,
            deadline=deadline,
            kind="sandbox",
            obj=sandbox_id,
        )
        return response.stats

    async def list_pod_sandbox_stats(
        self, *, filter: api.PodSandboxStatsFilter | None = None, deadline: float | None = None
    ) -> list[api.PodSandboxStats]:
        request = api.ListPodSandboxStatsRequest(filter=filter)
        rpc = self._runtime.ListPodSandboxStats
        response = await self._call("ListPodSandboxStats", rpc, request, deadline=deadline)
        return list(response.stats)

    # -- ImageService ------------------------------------------------------------------------

    async def list_images(
        self, *, filter: api.ImageFilter | None = None, deadline: float | None = None
    ) -> list[api.Image]:
        request = api.ListImagesRequest(filter=filter)
        response = await self._call(
            "ListImages", self._images.ListImages, request, deadline=deadline
        )
        return list(response.images)

    async def image_status(
        self, image: str | api.ImageSpec, *, verbose: bool = False, deadline: float | None = None
    ) -> api.ImageStatusResponse:
        """Look an image up; an absent image is a response without `image` set, not an error."""
        spec = _image_spec(image)
        request = api.ImageStatusRequest(image=spec, verbose=verbose)
        return await self._call(
            "ImageStatus",
            self._images.ImageStatus,
            request,
            deadline=deadline,
            kind="image",
            obj=spec.image,
        )

    async def pull_image(
        self,
        image: str | api.ImageSpec,
        *,
        auth: api.AuthConfig | None = None,
        sandbox_config: api.PodSandboxConfig | None = None,
        deadline: float | None = None,
    ) -> str:
        """Pull an image; return the runtime's reference for it (usually its id)."""
        spec = _image_spec(image)
        request = api.PullImageRequest(image=spec, auth=auth, sandbox_config=sandbox_config)
        response = await self._call(
            "PullImage",
            self._images.PullImage,
            request,
            deadline=deadline,
            default=self.timeouts.pull_image,
            kind="image",
            obj=spec.image,
        )
        return response.image_ref

    async def remove_image(
        self, image: str | api.ImageSpec, *, deadline: float | None = None
    ) -> None:
        spec = _image_spec(image)
        request = api.RemoveImageRequest(image=spec)
        await self._call(
            "RemoveImage",
            self._images.RemoveImage,
            request,
            deadline=deadline,
            kind="image",
            obj=spec.image,
        )

    async def image_fs_info(self, *, deadline: float | None = None) -> api.ImageFsInfoResponse:
        request = api.ImageFsInfoRequest()
        return await self._call("ImageFsInfo", self._images.ImageFsInfo, request, deadline=deadline)
