"""Probe parsing and defaults, the threshold counter, port resolution."""

from __future__ import annotations

import pytest

from kubelet.pods.model import ContainerPort
from kubelet.prober.results import Result, ThresholdCounter
from kubelet.prober.spec import (
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    Kind,
    ProbeSpecError,
    TCPSocketAction,
    parse_probe,
    resolve_port,
)


def test_defaults_apply_to_missing_and_zero_values() -> None:
    spec = parse_probe(Kind.READINESS, {"exec": {"command": ["true"]}, "periodSeconds": 0})
    assert spec.handler == ExecAction(("true",))
    assert (spec.initial_delay, spec.period, spec.timeout) == (0, 10, 1)
    assert (spec.success_threshold, spec.failure_threshold) == (1, 3)
    assert spec.termination_grace_period is None


def test_success_threshold_is_one_for_liveness_and_startup() -> None:
    raw = {"tcpSocket": {"port": 80}, "successThreshold": 3, "terminationGracePeriodSeconds": 5}
    assert parse_probe(Kind.READINESS, raw).success_threshold == 3
    assert parse_probe(Kind.READINESS, raw).termination_grace_period is None
    live = parse_probe(Kind.LIVENESS, raw)
    assert live.success_threshold == 1
    assert live.termination_grace_period == 5
    assert parse_probe(Kind.STARTUP, raw).success_threshold == 1


def test_handlers() -> None:
    http = parse_probe(
        Kind.LIVENESS,
        {
            "httpGet": {
                "port": "web",
                "path": "healthz",
                "scheme": "https",
                "httpHeaders": [{"name": "X-A", "value": "1"}],
            },
        },
    ).handler
    assert http == HTTPGetAction(
        port="web", path="/healthz", scheme="HTTPS", headers=(("X-A", "1"),)
    )
    tcp = parse_probe(Kind.LIVENESS, {"tcpSocket": {"port": 81, "host": "h"}}).handler
    assert tcp == TCPSocketAction(port=81, host="h")
    grpc = parse_probe(Kind.LIVENESS, {"grpc": {"port": 9, "service": "s"}}).handler
    assert grpc == GRPCAction(port=9, service="s")


@pytest.mark.parametrize(
    "raw",
    [{}, {"exec": {"command": []}}, {"httpGet": {}}, {"grpc": {"port": "x"}}],
)
def test_bad_probes_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ProbeSpecError):
        parse_probe(Kind.LIVENESS, raw)


def test_resolve_port() -> None:
    ports = (ContainerPort(8080, name="web"),)
    assert resolve_port(81, ports) == 81
    assert resolve_port("web", ports) == 8080
    assert resolve_port("9090", ports) == 9090
    with pytest.raises(ProbeSpecError, match="couldn't find port"):
        resolve_port("nope", ports)
    with pytest.raises(ProbeSpecError, match="invalid port"):
        resolve_port(70000, ports)


def test_threshold_counter() -> None:
    spec = parse_probe(
        Kind.READINESS,
        {"exec": {"command": ["x"]}, "successThreshold": 2, "failureThreshold": 2},
    )
    c = ThresholdCounter(spec)
    assert c.value is False
    assert c.observe(Result.SUCCESS) is None
    assert c.observe(Result.UNKNOWN) is None  # an error neither counts nor resets
    assert c.observe(Result.WARNING) is True  # a warning is a success
    assert c.observe(Result.FAILURE) is None
    assert c.observe(Result.SUCCESS) is None  # the run of failures was broken, not enough yet
    assert c.observe(Result.FAILURE) is None
    assert c.observe(Result.FAILURE) is False
    assert c.observe(Result.FAILURE) is False
    assert ThresholdCounter(parse_probe(Kind.LIVENESS, {"exec": {"command": ["x"]}})).value
