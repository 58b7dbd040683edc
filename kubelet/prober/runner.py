"""Runs one probe attempt of any kind against one container and says what came of it.
It must not schedule, count thresholds or cache results (the workers do that).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from kubelet.pods.model import ContainerID, ContainerPort
from kubelet.prober.execprobe import ExecRuntime, probe_exec
from kubelet.prober.grpcprobe import probe_grpc
from kubelet.prober.httpprobe import make_client, probe_http, probe_url
from kubelet.prober.results import Outcome, Result
from kubelet.prober.spec import (
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    ProbeSpec,
    ProbeSpecError,
    TCPSocketAction,
    resolve_port,
)
from kubelet.prober.tcpprobe import probe_tcp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a probe goes: the container (for exec) and the pod's IP (for network probes)."""

    container_id: ContainerID
    pod_ip: str
    ports: tuple[ContainerPort, ...] = ()


class Runner:
    """One attempt of a probe; network probes go from the host to the pod IP, never blocking
    the event loop."""

    def __init__(self, runtime: ExecRuntime) -> None:
        self._runtime = runtime
        self._http: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def run(self, spec: ProbeSpec, target: Target) -> Outcome:
        try:
            return await self._run(spec, target)
        except ProbeSpecError as e:
            return Outcome(Result.UNKNOWN, str(e))
        except Exception as e:  # a bug in a probe must not end its worker
            log.exception("probe of container %s crashed", target.container_id)
            return Outcome(Result.UNKNOWN, f"{type(e).__name__}: {e}")

    async def _run(self, spec: ProbeSpec, target: Target) -> Outcome:
        h, timeout = spec.handler, float(spec.timeout)
        if isinstance(h, ExecAction):
            return await probe_exec(self._runtime, target.container_id, h.command, spec.timeout)
        host = getattr(h, "host", "") or target.pod_ip
        if not host:
            return Outcome(Result.UNKNOWN, "the pod has no IP address yet")
        if isinstance(h, HTTPGetAction):
            if h.scheme not in ("HTTP", "HTTPS"):
                raise ProbeSpecError(f"unsupported scheme {h.scheme!r}")
            url = probe_url(h.scheme, host, resolve_port(h.port, target.ports), h.path)
            if self._http is None:
                self._http = make_client()
            return await probe_http(self._http, url, h.headers, timeout)
        if isinstance(h, TCPSocketAction):
            return await probe_tcp(host, resolve_port(h.port, target.ports), timeout)
        if isinstance(h, GRPCAction):
            return await probe_grpc(host, resolve_port(h.port, ()), h.service, timeout)
        raise ProbeSpecError(f"unknown probe handler {h!r}")
