"""Finds a pod's sandbox through the CRI (as crictl does): by the io.kubernetes.pod.* labels,
the newest ready sandbox, with its netns path from the verbose PodSandboxStatus info."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from cri import api
from cri.client import RuntimeClient

NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
NAME_LABEL = "io.kubernetes.pod.name"
UID_LABEL = "io.kubernetes.pod.uid"


class PodNotFound(Exception):
    """No such pod on this node's runtime, or the runtime did not answer; message for users."""


@dataclass(frozen=True)
class PodSandbox:
    namespace: str
    name: str
    uid: str
    sandbox_id: str
    netns: str
    """Path of the sandbox's network namespace; "" for hostNetwork pods."""
    ip: str
    host_network: bool


def netns_from_info(info: dict[str, str]) -> str:
    """The network namespace path from PodSandboxStatus's verbose info (containerd puts the
    OCI runtime spec under "info"); "" when the sandbox shares the host's."""
    try:
        spec = json.loads(info.get("info", "{}"))
        for ns in spec["runtimeSpec"]["linux"]["namespaces"]:
            if ns.get("type") == "network":
                return str(ns.get("path", ""))
    except (ValueError, KeyError, TypeError):
        pass
    return ""


async def _find(endpoint: str, namespace: str, name: str, per_call: float) -> PodSandbox:
    async with RuntimeClient(endpoint) as rt:
        selector = {NAMESPACE_LABEL: namespace, NAME_LABEL: name}
        flt = api.PodSandboxFilter(label_selector=selector)
        items = await rt.list_pod_sandbox(filter=flt, deadline=per_call)
        ready = [s for s in items if s.state == api.PodSandboxState.Value("SANDBOX_READY")]
        if not ready:
            what = "no ready sandbox" if items else "no sandbox"
            raise PodNotFound(f"pod {namespace}/{name}: {what} in the runtime at {endpoint}")
        sb = max(ready, key=lambda s: s.created_at)
        st = await rt.pod_sandbox_status(sb.id, verbose=True, deadline=per_call)
        mode = st.status.linux.namespaces.options.network
        host = mode == api.NODE
        return PodSandbox(
            namespace=namespace,
            name=name,
            uid=sb.metadata.uid,
            sandbox_id=sb.id,
            netns="" if host else netns_from_info(dict(st.info)),
            ip=st.status.network.ip,
            host_network=host,
        )


def find(endpoint: str, namespace: str, name: str, timeout: float = 10.0) -> PodSandbox:
    """Blocking lookup (runs its own event loop)."""
    try:
        return asyncio.run(_find(endpoint, namespace, name, timeout))
    except PodNotFound:
        raise
    except Exception as e:  # CRI errors, unreachable socket
        raise PodNotFound(f"pod {namespace}/{name}: asking the runtime at {endpoint}: {e}") from e
