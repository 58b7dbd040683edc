"""The pod workers' metrics: pod start durations (all of it, and the SLI without image pulls)
and the per-sync worker duration. Declarations only, in the agent's registry.
"""

from __future__ import annotations

from prometheus_client import Histogram

from kubelet.metrics import OP_BUCKETS, REGISTRY

_POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480)

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
    buckets=OP_BUCKETS,
    registry=REGISTRY,
)
