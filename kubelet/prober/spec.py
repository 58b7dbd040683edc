"""Probe specs as frozen data: the raw container probe dicts parsed with upstream's defaults.
Pure: no I/O, no clock; it must not run probes or hold results.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kube.jsontypes import JsonMap
from kubelet.pods.model import Container, ContainerPort

DEFAULT_PERIOD = 10
DEFAULT_TIMEOUT = 1
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_FAILURE_THRESHOLD = 3


class ProbeSpecError(ValueError):
    """A probe the agent cannot run (no handler, bad port...): the text names the cause."""


class Kind(StrEnum):
    """The probe kinds, spelled as upstream's events spell them."""

    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


@dataclass(frozen=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True)
class HTTPGetAction:
    port: int | str
    path: str = "/"
    host: str = ""
    """Empty: the pod IP."""
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TCPSocketAction:
    port: int | str
    host: str = ""


@dataclass(frozen=True)
class GRPCAction:
    port: int
    service: str = ""


Handler = ExecAction | HTTPGetAction | TCPSocketAction | GRPCAction


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of one container, defaults applied."""

    kind: Kind
    handler: Handler
    initial_delay: int = 0
    """Seconds after the container started before the first probe."""
    period: int = DEFAULT_PERIOD
    timeout: int = DEFAULT_TIMEOUT
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    termination_grace_period: int | None = None
    """Probe-level terminationGracePeriodSeconds (liveness and startup only)."""


def _positive(raw: JsonMap, key: str, default: int) -> int:
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        return default
    return v


def _port(raw: JsonMap, what: str) -> int | str:
    port = raw.get("port")
    if isinstance(port, bool) or not isinstance(port, int | str) or port == "":
        raise ProbeSpecError(f"{what}.port must be a number or a port name")
    return port


def _handler(raw: JsonMap) -> Handler:
    if isinstance(ex := raw.get("exec"), dict):
        cmd = ex.get("command") or []
        if not cmd or not all(isinstance(a, str) for a in cmd):
            raise ProbeSpecError("exec.command must be a non-empty list of strings")
        return ExecAction(tuple(cmd))
    if isinstance(http := raw.get("httpGet"), dict):
        headers = tuple(
            (str(h.get("name", "")), str(h.get("value", "")))
            for h in http.get("httpHeaders") or []
            if isinstance(h, dict) and h.get("name")
        )
        path = str(http.get("path") or "/")
        return HTTPGetAction(
            port=_port(http, "httpGet"),
            path=path if path.startswith("/") else f"/{path}",
            host=str(http.get("host") or ""),
            scheme=str(http.get("scheme") or "HTTP").upper(),
            headers=headers,
        )
    if isinstance(tcp := raw.get("tcpSocket"), dict):
        return TCPSocketAction(port=_port(tcp, "tcpSocket"), host=str(tcp.get("host") or ""))
    if isinstance(grpc := raw.get("grpc"), dict):
        port = grpc.get("port")
        if isinstance(port, bool) or not isinstance(port, int):
            raise ProbeSpecError("grpc.port must be a number")
        return GRPCAction(port=port, service=str(grpc.get("service") or ""))
    raise ProbeSpecError("the probe has no handler (exec, httpGet, tcpSocket or grpc)")


def parse_probe(kind: Kind, raw: JsonMap) -> ProbeSpec:
    """A container's probe dict as a ProbeSpec; raises ProbeSpecError. Zero or missing numbers
    take upstream's defaults; successThreshold is 1 for liveness and startup probes."""
    delay = raw.get("initialDelaySeconds")
    grace = raw.get("terminationGracePeriodSeconds")
    success = _positive(raw, "successThreshold", DEFAULT_SUCCESS_THRESHOLD)
    return ProbeSpec(
        kind=kind,
        handler=_handler(raw),
        initial_delay=delay if isinstance(delay, int) and delay > 0 else 0,
        period=_positive(raw, "periodSeconds", DEFAULT_PERIOD),
        timeout=_positive(raw, "timeoutSeconds", DEFAULT_TIMEOUT),
        success_threshold=success if kind is Kind.READINESS else 1,
        failure_threshold=_positive(raw, "failureThreshold", DEFAULT_FAILURE_THRESHOLD),
        termination_grace_period=grace
        if isinstance(grace, int) and not isinstance(grace, bool) and kind is not Kind.READINESS
        else None,
    )


def container_probes(c: Container) -> dict[Kind, JsonMap]:
    """The raw probes a container declares, by kind."""
    raw = {Kind.LIVENESS: c.liveness_probe, Kind.READINESS: c.readiness_probe}
    raw[Kind.STARTUP] = c.startup_probe
    return {k: v for k, v in raw.items() if v is not None}


def resolve_port(port: int | str, ports: tuple[ContainerPort, ...]) -> int:
    """A probe port as a number: a number as is, a name looked up in the container's ports (a
    numeric string as a last resort, as upstream); raises ProbeSpecError."""
    if isinstance(port, str):
        named = [p.container_port for p in ports if p.name == port]
        if named:
            port = named[0]
        elif port.isdigit():
            port = int(port)
        else:
            raise ProbeSpecError(f"couldn't find port {port!r} in the container's ports")
    if not 0 < port < 65536:
        raise ProbeSpecError(f"invalid port number: {port}")
    return port
