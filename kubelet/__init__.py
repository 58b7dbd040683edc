"""pykubelet's node agent, composed in agent.py: configuration, certificates, the Node and its
heartbeat, pods, runtime, volumes, probes, cgroups, eviction, graceful shutdown, the :10250 API
and the metrics registry (metrics.py). The root only re-exports the versions (they live in kube/).
"""

from kube import KUBERNETES_VERSION, __version__

__all__ = ["KUBERNETES_VERSION", "__version__"]
