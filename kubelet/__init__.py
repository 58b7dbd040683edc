"""pykubelet's node agent: configuration, apiserver access, node status, pods, and the harness.
The package root holds only the version.
"""

__version__ = "0.1.0"

KUBERNETES_VERSION = "v1.36.3"
"""The Kubernetes release whose node API pykubelet speaks (and the harness builds)."""
