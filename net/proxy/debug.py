"""The /debug/rules, /debug/explain and /debug/trace views (`pykubelet net rules|explain|trace`):
the history of syncs and the engine's state, with the rules read back from the mode's backend.
"""

from __future__ import annotations

from typing import Any

from net.proxy import conntrack
from net.proxy.history import History
from net.proxy.proxier import Proxier


class DebugViews:
    """What http.metrics_app serves under /debug (its DebugSource)."""

    def __init__(self, proxier: Proxier, history: History, node_name: str) -> None:
        self.proxier = proxier
        self.history = history
        self.node_name = node_name

    def rules(self, *, with_text: bool) -> dict[str, Any]:
        traits = self.proxier.backend.traits
        return {
            "node": self.node_name,
            "mode": traits.mode,
            "backend": traits.name,
            "synced": self.proxier.synced_once,
            "ruleCount": self.proxier.backend.rule_count(),
            "sizeUnit": traits.size_unit,
            "textKind": traits.text_kind,
            "history": self.history.to_json(with_text=with_text),
        }

    def explain(self, namespace: str, name: str) -> dict[str, Any] | None:
        """None when there is no such Service, or no rules were applied yet."""
        p = self.proxier
        key = (namespace, name)
        # The informers' state, not the last synced one: right after a sync put a Service's
        # rules in the kernel, the sync's bookkeeping may not have run yet on the event loop;
        # endpoints not in the applied rules yet show without a chain.
        state = p.snapshot()
        svc = state.services.get(key)
        if svc is None or not p.synced_once:
            return None
        entries: list[conntrack.ConntrackEntry] = []
        if p.conntrack is not None:
            for ip in (svc.cluster_ip, *svc.external_ips, *svc.lb_ips):
                entries.extend(conntrack.parse_conntrack(p.conntrack.list(ip)))
        result = p.backend.explain(state, key, config=p.config, conntrack=entries)
        return result.to_json() if result is not None else None

    def trace(self, src: str, dst: str, port: int, proto: str) -> dict[str, Any]:
        p = self.proxier
        result = p.backend.trace(
            src=src, dst=dst, port=port, proto=proto, local_addresses=p.config.node_ips
        )
        if result is None:
            return {"error": "no rules applied yet"}
        return result.to_json()
