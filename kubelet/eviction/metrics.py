"""The eviction manager's metric: evictions counted by the signal that caused them.
Declarations only, in the agent's registry.
"""

from __future__ import annotations

from prometheus_client import Counter

from kubelet.metrics import REGISTRY

EVICTIONS = Counter(
    "kubelet_evictions",
    "Cumulative number of pod evictions by eviction signal",
    ["eviction_signal"],
    registry=REGISTRY,
)
