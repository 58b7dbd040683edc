"""grpc handlers of the fake CRI runtime: each RPC as a plausible state transition on FakeRuntime.
Records every call and applies injected faults first; tests only, never for production.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from cri import api
from cri._gen import api_pb2_grpc
from cri.fake_state import (
    RUNTIME_NAME,
    RUNTIME_VERSION,
    FakeContainer,
    FakeRuntime,
    FakeSandbox,
    RpcFailure,
    labels_match,
    new_id,
    now_ns,
)

__all__ = ["ImageServicer", "RuntimeServicer"]

_Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
_S = TypeVar("_S", bound="_Servicer")
_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


def _rpc(
    fn: Callable[[_S, _Req], _Resp],
) -> Callable[[_S, _Req, _Ctx], Coroutine[Any, Any, _Resp]]:
    """Turn a plain state operation into a grpc handler that records, injects faults, aborts."""
    method = fn.__name__

    @functools.wraps(fn)
    async def handler(self: _S, request: _Req, context: _Ctx) -> _Resp:
        await self.fake.before_call(method, request, context)
        try:
            return fn(self, request)
        except RpcFailure as fail:
            await context.abort(fail.code, fail.message)

    return handler


class _Servicer:
    def __init__(self, fake: FakeRuntime) -> None:
        self.fake = fake


class RuntimeServicer(_Servicer, api_pb2_grpc.RuntimeServiceServicer):
    @_rpc
    def Version(self, request: api.VersionRequest) -> api.VersionResponse:
        return api.VersionResponse(
            version="0.1.0",
            runtime_name=RUNTIME_NAME,
            runtime_version=RUNTIME_VERSION,
            runtime_api_version="v1",
        )

    @_rpc
    def Status(self, request: api.StatusRequest) -> api.StatusResponse:
        conditions = [
            api.RuntimeCondition(type="RuntimeReady", status=True),
            api.RuntimeCondition(
                type="NetworkReady",
                status=self.fake.network_ready,
                reason="" if self.fake.network_ready else "NetworkPluginNotReady",
            ),
        ]
        return api.StatusResponse(
            status=api.RuntimeStatus(conditions=conditions),
            runtime_handlers=[api.RuntimeHandler(name="")],
        )

    @_rpc
    def UpdateRuntimeConfig(
        self, request: api.UpdateRuntimeConfigRequest
    ) -> api.UpdateRuntimeConfigResponse:
        self.fake.pod_cidr = request.runtime_config.network_config.pod_cidr
        return api.UpdateRuntimeConfigResponse()

    # -- sandboxes -----------------------------------------------------------------------------

    @_rpc
    def RunPodSandbox(self, request: api.RunPodSandboxRequest) -> api.RunPodSandboxResponse:
        meta = request.config.metadata
        if not (meta.name and meta.namespace and meta.uid):
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT, "sandbox metadata needs name/namespace/uid"
            )
        for existing in self.fake.sandboxes.values():
            if existing.status.metadata == meta:
                msg = f"sandbox name {meta.namespace}/{meta.name} attempt {meta.attempt} is in use"
                raise RpcFailure(grpc.StatusCode.ALREADY_EXISTS, msg)
        host_network = request.config.linux.security_context.namespace_options.network
        status = api.PodSandboxStatus(
            id=new_id(),
            metadata=meta,
            state=api.SANDBOX_READY,
            created_at=now_ns(),
            network=api.PodSandboxNetworkStatus(
                ip="" if host_network == api.NODE else self.fake.allocate_ip()
            ),
            linux=api.LinuxPodSandboxStatus(
                namespaces=api.Namespace(
                    options=request.config.linux.security_context.namespace_options
                )
            ),
            labels=request.config.labels,
            annotations=request.config.annotations,
            runtime_handler=request.runtime_handler,
        )
        self.fake.sandboxes[status.id] = FakeSandbox(config=request.config, status=status)
        return api.RunPodSandboxResponse(pod_sandbox_id=status.id)

    @_rpc
    def StopPodSandbox(self, request: api.StopPodSandboxRequest) -> api.StopPodSandboxResponse:
        sandbox = self.fake.sandbox(request.pod_sandbox_id)
        for container in self.fake.containers.values():
            if container.sandbox_id == sandbox.status.id and container.status.state in (
                api.CONTAINER_CREATED,
                api.CONTAINER_RUNNING,
            ):
                self.fake.exit_container(container.status.id, exit_code=137, reason="Killed")
        sandbox.status.state = api.SANDBOX_NOTREADY
        return api.StopPodSandboxResponse()

    @_rpc
    def RemovePodSandbox(
        self, request: api.RemovePodSandboxRequest
    ) -> api.RemovePodSandboxResponse:
        sandbox_id = request.pod_sandbox_id
        for container_id, container in list(self.fake.containers.items()):
            if container.sandbox_id == sandbox_id:
                del self.fake.containers[container_id]
        self.fake.sandboxes.pop(sandbox_id, None)
        return api.RemovePodSandboxResponse()

    @_rpc
    def PodSandboxStatus(
        self, request: api.PodSandboxStatusRequest
    ) -> api.PodSandboxStatusResponse:
        sandbox = self.fake.sandbox(request.pod_sandbox_id)
        statuses = [
            c.status for c in self.fake.containers.values() if c.sandbox_id == sandbox.status.id
        ]
        return api.PodSandboxStatusResponse(
            status=sandbox.status, containers_statuses=statuses, timestamp=now_ns()
        )

    @_rpc
    def ListPodSandbox(self, request: api.ListPodSandboxRequest) -> api.ListPodSandboxResponse:
        flt = request.filter
        items = []
        for sandbox in self.fake.sandboxes.values():
            status = sandbox.status
            if flt.id and status.id != flt.id:
                continue
            if flt.HasField("state") and status.state != flt.state.state:
                continue
            if not labels_match(status.labels, flt.label_selector):
                continue
            items.append(
                api.PodSandbox(
                    id=status.id,
                    metadata=status.metadata,
                    state=status.state,
                    created_at=status.created_at,
                    labels=status.labels,
                    annotations=status.annotations,
                    runtime_handler=status.runtime_handler,
                )
            )
        return api.ListPodSandboxResponse(items=items)

    # -- containers ----------------------------------------------------------------------------

    @_rpc
    def CreateContainer(self, request: api.CreateContainerRequest) -> api.CreateContainerResponse:
        sandbox = self.fake.sandbox(request.pod_sandbox_id)
        if sandbox.status.state != api.SANDBOX_READY:
            msg = f"sandbox {sandbox.status.id!r} is not ready"
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, msg)
        config = request.config
        if not config.metadata.name:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "container metadata needs a name")
        image = self.fake.find_image(config.image.image)
        if image is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"image {config.image.image!r} not found")
        for existing in self.fake.containers.values():
            if existing.sandbox_id == sandbox.status.id and existing.config.metadata == (
                config.metadata
            ):
                msg = f"container name {config.metadata.name!r} is in use in this sandbox"
                raise RpcFailure(grpc.StatusCode.ALREADY_EXISTS, msg)
        status = api.ContainerStatus(
            id=new_id(),
            metadata=config.metadata,
            state=api.CONTAINER_CREATED,
            created_at=now_ns(),
            image=config.image,
            image_ref=image.id,
            image_id=image.id,
            labels=config.labels,
            annotations=config.annotations,
            mounts=config.mounts,
            log_path=os.path.join(sandbox.config.log_directory, config.log_path)
            if config.log_path
            else "",
            resources=api.ContainerResources(linux=config.linux.resources),
            stop_signal=config.stop_signal,
        )
        self.fake.containers[status.id] = FakeContainer(
            sandbox_id=sandbox.status.id, config=config, status=status
        )
        return api.CreateContainerResponse(container_id=status.id)

    @_rpc
    def StartContainer(self, request: api.StartContainerRequest) -> api.StartContainerResponse:
        status = self.fake.container(request.container_id).status
        if status.state != api.CONTAINER_CREATED:
            state = api.ContainerState.Name(status.state)
            msg = f"container {status.id!r} is {state}, not CONTAINER_CREATED"
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, msg)
        status.state = api.CONTAINER_RUNNING
        status.started_at = now_ns()
        return api.StartContainerResponse()

    @_rpc
    def StopContainer(self, request: api.StopContainerRequest) -> api.StopContainerResponse:
        status = self.fake.container(request.container_id).status
        if status.state in (api.CONTAINER_CREATED, api.CONTAINER_RUNNING):
            self.fake.exit_container(status.id, exit_code=self.fake.stop_exit_code)
        return api.StopContainerResponse()

    @_rpc
    def RemoveContainer(self, request: api.RemoveContainerRequest) -> api.RemoveContainerResponse:
        self.fake.containers.pop(request.container_id, None)
        return api.RemoveContainerResponse()

    @_rpc
    def ListContainers(self, request: api.ListContainersRequest) -> api.ListContainersResponse:
        flt = request.filter
        found = []
        for container in self.fake.containers.values():
            status = container.status
            if flt.id and status.id != flt.id:
                continue
            if flt.pod_sandbox_id and container.sandbox_id != flt.pod_sandbox_id:
                continue
            if flt.HasField("state") and status.state != flt.state.state:
                continue
            if not labels_match(status.labels, flt.label_selector):
                continue
            found.append(
                api.Container(
                    id=status.id,
                    pod_sandbox_id=container.sandbox_id,
                    metadata=status.metadata,
                    image=status.image,
                    image_ref=status.image_ref,
                    state=status.state,
                    created_at=status.created_at,
                    labels=status.labels,
                    annotations=status.annotations,
                    image_id=status.image_id,
                )
            )
        return api.ListContainersResponse(containers=found)

    @_rpc
    def ContainerStatus(self, request: api.ContainerStatusRequest) -> api.ContainerStatusResponse:
        return api.ContainerStatusResponse(status=self.fake.container(request.container_id).status)

    @_rpc
    def UpdateContainerResources(
        self, request: api.UpdateContainerResourcesRequest
    ) -> api.UpdateContainerResourcesResponse:
        container = self.fake.container(request.container_id)
        container.status.resources.linux.CopyFrom(request.linux)
        return api.UpdateContainerResourcesResponse()

    @_rpc
    def ReopenContainerLog(
        self, request: api.ReopenContainerLogRequest
    ) -> api.ReopenContainerLogResponse:
        self._running(request.container_id)
        return api.ReopenContainerLogResponse()

    def _running(self, container_id: str) -> api.ContainerStatus:
        status = self.fake.container(container_id).status
        if status.state != api.CONTAINER_RUNNING:
            msg = f"container {container_id!r} is not running"
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, msg)
        return status

    # -- exec, attach, port-forward ----------------------------------------------------------

    @_rpc
    def ExecSync(self, request: api.ExecSyncRequest) -> api.ExecSyncResponse:
        self._running(request.container_id)
        return self.fake.exec_handler(request.container_id, list(request.cmd))

    @_rpc
    def Exec(self, request: api.ExecRequest) -> api.ExecResponse:
        self._running(request.container_id)
        return api.ExecResponse(url=f"http://127.0.0.1:10010/exec/{secrets.token_hex(4)}")

    @_rpc
    def Attach(self, request: api.AttachRequest) -> api.AttachResponse:
        self._running(request.container_id)
        return api.AttachResponse(url=f"http://127.0.0.1:10010/attach/{secrets.token_hex(4)}")

    @_rpc
    def PortForward(self, request: api.PortForwardRequest) -> api.PortForwardResponse:
        self.fake.sandbox(request.pod_sandbox_id)
        token = secrets.token_hex(4)
        return api.PortForwardResponse(url=f"http://127.0.0.1:10010/portforward/{token}")

    # -- stats ---------------------------------------------------------------------------------

    def _container_stats(self, container: FakeContainer) -> api.ContainerStats:
        status = container.status
        now = now_ns()
        used_ns = max(0, now - status.started_at) if status.started_at else 0
        return api.ContainerStats(
            attributes=api.ContainerAttributes(
                id=status.id,
                metadata=status.metadata,
                labels=status.labels,
                annotations=status.annotations,
            ),
            cpu=api.CpuUsage(
                timestamp=now, usage_core_nano_seconds=api.UInt64Value(value=used_ns // 100)
            ),
            memory=api.MemoryUsage(
                timestamp=now, working_set_bytes=api.UInt64Value(value=10 << 20)
            ),
        )

    def _sandbox_stats(self, sandbox: FakeSandbox) -> api.PodSandboxStats:
        status = sandbox.status
        containers = [
            self._container_stats(c)
            for c in self.fake.containers.values()
            if c.sandbox_id == status.id
        ]
        return api.PodSandboxStats(
            attributes=api.PodSandboxAttributes(
                id=status.id,
                metadata=status.metadata,
                labels=status.labels,
                annotations=status.annotations,
            ),
            linux=api.LinuxPodSandboxStats(containers=containers),
        )

    @_rpc
    def ContainerStats(self, request: api.ContainerStatsRequest) -> api.ContainerStatsResponse:
        container = self.fake.container(request.container_id)
        return api.ContainerStatsResponse(stats=self._container_stats(container))

    @_rpc
    def ListContainerStats(
        self, request: api.ListContainerStatsRequest
    ) -> api.ListContainerStatsResponse:
        flt = request.filter
        stats = [
            self._container_stats(c)
            for c in self.fake.containers.values()
            if (not flt.id or c.status.id == flt.id)
            and (not flt.pod_sandbox_id or c.sandbox_id == flt.pod_sandbox_id)
            and labels_match(c.status.labels, flt.label_selector)
        ]
        return api.ListContainerStatsResponse(stats=stats)

    @_rpc
    def PodSandboxStats(self, request: api.PodSandboxStatsRequest) -> api.PodSandboxStatsResponse:
        sandbox = self.fake.sandbox(request.pod_sandbox_id)
        return api.PodSandboxStatsResponse(stats=self._sandbox_stats(sandbox))

    @_rpc
    def ListPodSandboxStats(
        self, request: api.ListPodSandboxStatsRequest
    ) -> api.ListPodSandboxStatsResponse:
        flt = request.filter
        stats = [
            self._sandbox_stats(s)
            for s in self.fake.sandboxes.values()
            if (not flt.id or s.status.id == flt.id)
            and labels_match(s.status.labels, flt.label_selector)
        ]
        return api.ListPodSandboxStatsResponse(stats=stats)


class ImageServicer(_Servicer, api_pb2_grpc.ImageServiceServicer):
    @_rpc
    def ListImages(self, request: api.ListImagesRequest) -> api.ListImagesResponse:
        wanted = request.filter.image.image
        if wanted:
            image = self.fake.find_image(wanted)
            return api.ListImagesResponse(images=[image] if image else [])
        return api.ListImagesResponse(images=list(self.fake.images.values()))

    @_rpc
    def ImageStatus(self, request: api.ImageStatusRequest) -> api.ImageStatusResponse:
        image = self.fake.find_image(request.image.image)
        return api.ImageStatusResponse(image=image) if image else api.ImageStatusResponse()

    @_rpc
    def PullImage(self, request: api.PullImageRequest) -> api.PullImageResponse:
        if not request.image.image:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "image reference is empty")
        return api.PullImageResponse(image_ref=self.fake.add_image(request.image.image).id)

    @_rpc
    def RemoveImage(self, request: api.RemoveImageRequest) -> api.RemoveImageResponse:
        image = self.fake.find_image(request.image.image)
        if image is not None:
            del self.fake.images[image.id]
        return api.RemoveImageResponse()

    @_rpc
    def ImageFsInfo(self, request: api.ImageFsInfoRequest) -> api.ImageFsInfoResponse:
        used = sum(image.size for image in self.fake.images.values())
        usage = api.FilesystemUsage(
            timestamp=now_ns(),
            fs_id=api.FilesystemIdentifier(mountpoint="/var/lib/fake-runtime"),
            used_bytes=api.UInt64Value(value=used),
            inodes_used=api.UInt64Value(value=len(self.fake.images)),
        )
        return api.ImageFsInfoResponse(image_filesystems=[usage], container_filesystems=[usage])
