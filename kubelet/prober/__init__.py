"""Container probes (liveness, readiness, startup): the manager the pod workers consume as
`Probes`. Nothing outside this package may reach into its modules' internals.
"""

from kubelet.prober.manager import ProbeManager

__all__ = ["ProbeManager"]
