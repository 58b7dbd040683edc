"""The agent's Prometheus metrics under upstream kubelet names, in one registry other modules import
and observe. Declarations and text rendering only: nothing here reads the runtime or the host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480)
_OP_BUCKETS = tuple(0.005 * 2.5**i for i in range(12))
"""Upstream's ExponentialBuckets(0.005, 2.5, 12) for operation latencies."""

NODE_NAME = Gauge(
    "kubelet_node_name", "The node's name. The count is always 1.", ["node"], registry=REGISTRY
)
RUNNING_PODS = Gauge(
    "kubelet_running_pods", "Number of pods that have a running pod sandbox", registry=REGISTRY
)
RUNNING_CONTAINERS = Gauge(
    "kubelet_running_containers",
    "Number of containers currently running",
    ["container_state"],
    registry=REGISTRY,
)
POD_START_DURATION = Histogram(
    "kubelet_pod_start_duration_seconds",
    "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
    buckets=_POD_START_BUCKETS,
    registry=REGISTRY,
)
POD_START_SLI_DURATION = Histogram(
    "kubelet_pod_start_sli_duration_seconds",
    "Duration in seconds to start a pod, excluding time to pull images and run init containers, "
    "measured from pod creation timestamp to when all its containers are reported as started "
    "and observed via watch",
    buckets=_POD_START_BUCKETS,
    registry=REGISTRY,
)
POD_WORKER_DURATION = Histogram(
    "kubelet_pod_worker_duration_seconds",
    "Duration in seconds to sync a single pod. Broken down by operation type: create, update, "
    "or sync",
    ["operation_type"],
    buckets=_OP_BUCKETS,
    registry=REGISTRY,
)
SERVER_CERT_TTL = Gauge(
    "kubelet_certificate_manager_server_ttl_seconds",
    "Gauge of the shortest TTL (time-to-live) of the Kubelet's serving certificate. The value is "
    "in seconds until certificate expiry (negative if already expired). If serving certificate "
    "is invalid or unused, the value will be +INF.",
    registry=REGISTRY,
)
SERVER_CERT_TTL.set(float("inf"))
CLIENT_CERT_TTL = Gauge(
    "kubelet_certificate_manager_client_ttl_seconds",
    "Gauge of the TTL (time-to-live) of the Kubelet's client certificate. The value is in seconds "
    "until certificate expiry (negative if already expired). If client certificate is invalid or "
    "unused, the value will be +INF.",
    registry=REGISTRY,
)
CLIENT_CERT_TTL.set(float("inf"))


class PlainCounter:
    """A counter exposed under exactly its upstream name, which has no _total suffix: the text
    format of prometheus_client appends _total to every counter family, so this one is
    exposed untyped (a scraper treats it as a gauge; its value only grows)."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.value = name, documentation, 0.0
        registry.register(self)

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "unknown")
        metric.add_sample(self.name, {}, self.value)
        yield metric


SERVER_RENEW_ERRORS = PlainCounter(
    "kubelet_server_expiration_renew_errors", "Counter of certificate renewal errors.", REGISTRY
)
CLIENT_RENEW_ERRORS = PlainCounter(
    "kubelet_certificate_manager_client_expiration_renew_errors",
    "Counter of certificate renewal errors.",
    REGISTRY,
)
RUNTIME_OPERATIONS_DURATION = Histogram(
    "kubelet_runtime_operations_duration_seconds",
    "Duration in seconds of runtime operations. Broken down by operation type.",
    ["operation_type"],
    buckets=_OP_BUCKETS,
    registry=REGISTRY,
)
RUNTIME_OPERATIONS = Counter(
    "kubelet_runtime_operations",
    "Cumulative number of runtime operations by operation type.",
    ["operation_type"],
    registry=REGISTRY,
)
RUNTIME_OPERATIONS_ERRORS = Counter(
    "kubelet_runtime_operations_errors",
    "Cumulative number of runtime operation errors by operation type.",
    ["operation_type"],
    registry=REGISTRY,
)
EVICTIONS = Counter(
    "kubelet_evictions",
    "Cumulative number of pod evictions by eviction signal",
    ["eviction_signal"],
    registry=REGISTRY,
)
PLEG_RELIST_DURATION = Histogram(
    "kubelet_pleg_relist_duration_seconds",
    "Duration in seconds for relisting pods in PLEG.",
    buckets=_OP_BUCKETS,
    registry=REGISTRY,
)


_OPERATION_NAMES = {"UpdateContainerResources": "update_container"}
"""CRI methods whose upstream operation_type is not simply their snake_case name."""


def operation_type(method: str) -> str:
    """Upstream's operation_type label for a CRI method: "ListPodSandbox" -> "list_podsandbox"."""
    name = _OPERATION_NAMES.get(method)
    if name is None:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower().replace("pod_sandbox", "podsandbox")
    return name


def observe_runtime_operation(method: str, seconds: float, ok: bool) -> None:
    """The CRI client's hook (cri.client.RuntimeClient `observe`): one finished call."""
    op = operation_type(method)
    RUNTIME_OPERATIONS.labels(operation_type=op).inc()
    RUNTIME_OPERATIONS_DURATION.labels(operation_type=op).observe(seconds)
    if not ok:
        RUNTIME_OPERATIONS_ERRORS.labels(operation_type=op).inc()


def render() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)
