"""iptables mode's own metrics, with upstream's names (IPVS mode, which restores iptables rules
too, registers them as well): restore failures, and rules per table after a full sync.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class IptablesMetrics:
    """Made unregistered; register() adds them to the proxy's registry."""

    def __init__(self) -> None:
        self.restore_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
            "Cumulative proxy iptables restore failures",
            registry=None,
        )
        self.partial_restore_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
            "Cumulative proxy iptables partial restore failures",
            registry=None,
        )
        self.rules_total = Gauge(
            "kubeproxy_sync_proxy_rules_iptables_total",
            "Total number of iptables rules owned by kube-proxy",
            ["table"],
            registry=None,
        )

    def register(self, registry: CollectorRegistry) -> None:
        for metric in (self.restore_failures, self.partial_restore_failures, self.rules_total):
            registry.register(metric)

    def record_sync(self, *, ok: bool, full: bool) -> None:
        if not ok:
            self.restore_failures.inc()
            if not full:
                self.partial_restore_failures.inc()
