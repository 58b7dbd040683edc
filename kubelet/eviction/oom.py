"""Container OOM kills, pure: which exited containers of a pod the kernel killed for its memory
limit (the runtime's reason OOMKilled) and were not reported yet, and the event for each.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubelet.pods.model import ContainerState, RuntimeContainer

OOM_KILLED = "OOMKilled"
OOM_EVENT_REASON = "OOMKilling"
"""Upstream's kubelet records no pod event for a container OOM kill (only SystemOOM on the
Node); node-problem-detector's reason for kernel OOM kills is used instead."""


def new_oom_kills(containers: Iterable[RuntimeContainer], seen: set[str]) -> list[RuntimeContainer]:
    """OOM-killed exited containers not in `seen` (which is updated)."""
    out = []
    for c in containers:
        if c.state == ContainerState.EXITED and c.reason == OOM_KILLED and c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out


def oom_message(c: RuntimeContainer) -> str:
    return (
        f"Container {c.name} was killed by the kernel for exceeding its memory limit "
        f"(OOMKilled, exit code {c.exit_code})"
    )
