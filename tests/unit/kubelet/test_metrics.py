"""Unit tests of the agent's registry: once the agent is composed, every metric the subsystems
declare beside their code is registered under its upstream name.
"""

from __future__ import annotations

import kubelet.agent  # noqa: F401  (imports every subsystem, so each registers its metrics)
from kubelet.metrics import REGISTRY, render

UPSTREAM_NAMES = {
    "kubelet_node_name",
    "kubelet_running_pods",
    "kubelet_running_containers",
    "kubelet_pod_start_duration_seconds",
    "kubelet_pod_start_sli_duration_seconds",
    "kubelet_pod_worker_duration_seconds",
    "kubelet_certificate_manager_server_ttl_seconds",
    "kubelet_certificate_manager_client_ttl_seconds",
    "kubelet_server_expiration_renew_errors",
    "kubelet_certificate_manager_client_expiration_renew_errors",
    "kubelet_runtime_operations_duration_seconds",
    "kubelet_runtime_operations",
    "kubelet_runtime_operations_errors",
    "kubelet_evictions",
    "kubelet_pleg_relist_duration_seconds",
    "kubelet_graceful_shutdown_start_time_seconds",
    "kubelet_graceful_shutdown_end_time_seconds",
}


def test_composed_agent_registers_every_metric() -> None:
    assert {m.name for m in REGISTRY.collect()} >= UPSTREAM_NAMES


def test_renewal_error_counters_keep_their_names_without_total() -> None:
    text = render().decode()
    assert "\nkubelet_server_expiration_renew_errors " in text
    assert "kubelet_server_expiration_renew_errors_total" not in text
