"""The agent's one Prometheus registry and its text rendering, with the metrics of the agent as a
whole (node name, running pods and containers). Subsystems declare their own metrics beside what
they measure (kubelet/*/metrics.py) in this registry; nothing here reads the runtime or the host.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.metrics_core import Metric

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

OP_BUCKETS = tuple(0.005 * 2.5**i for i in range(12))
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


def render() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)
