"""The container runtime's metrics: CRI operations (count, duration, errors) under upstream's
operation_type names, and the PLEG relist duration. Declarations and the CRI client's hook only.
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

from kubelet.metrics import OP_BUCKETS, REGISTRY

RUNTIME_OPERATIONS_DURATION = Histogram(
    "kubelet_runtime_operations_duration_seconds",
    "Duration in seconds of runtime operations. Broken down by operation type.",
    ["operation_type"],
    buckets=OP_BUCKETS,
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
PLEG_RELIST_DURATION = Histogram(
    "kubelet_pleg_relist_duration_seconds",
    "Duration in seconds for relisting pods in PLEG.",
    buckets=OP_BUCKETS,
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
