"""The node's view of the CRI runtime: pod-to-CRI sandbox and container configs and the
io.kubernetes.* labels (pure), the PLEG relist cache (state.py, the one module here that calls
the runtime), termination and pull-secret helpers, and the runtime's metrics.
"""

from kube.quantity import QuantityError, parse_cpu, parse_memory
from kubelet.runtime.criconfig import (
    DNSSettings,
    container_config,
    pod_log_directory,
    sandbox_config,
)
from kubelet.runtime.labels import (
    ContainerRef,
    PodRef,
    container_hash,
    read_container_ref,
    read_pod_ref,
)

__all__ = [
    "ContainerRef",
    "DNSSettings",
    "PodRef",
    "QuantityError",
    "container_config",
    "container_hash",
    "parse_cpu",
    "parse_memory",
    "pod_log_directory",
    "read_container_ref",
    "read_pod_ref",
    "sandbox_config",
]
