"""Kubernetes plumbing that both agents (the node agent in kubelet/ and the Service proxy in
net/) share: apiserver access, JSON types, units and quantities, Go flag syntax, node facts, task
supervision and systemd notification. Imports nothing of the project above it; holds the versions.
"""

__version__ = "0.1.0"

KUBERNETES_VERSION = "v1.36.3"
"""The Kubernetes release whose node API pykubelet speaks (and the harness builds)."""
