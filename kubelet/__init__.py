"""pykubelet's node agent: configuration, node status, pods, volumes, probes, resources and the
:10250 API. The package root only re-exports the versions (they live in kube/).
"""

from kube import KUBERNETES_VERSION, __version__

__all__ = ["KUBERNETES_VERSION", "__version__"]
