"""Pod-to-CRI translation: sandbox and container configs, and the io.kubernetes.* labels on them.
Pure functions over plain pod dicts; it must not call the runtime or touch the host.
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
