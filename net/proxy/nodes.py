"""The proxy's view of the Nodes: the node list the node-route syncer follows, and whether this
node is being deleted (which /healthz reports). Fed by the Node informer; no Service rules here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from kube.apiserver import SYNC, InformerEvent
from net.proxy.http import Health


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class NodeCache:
    """Every Node by name, as the informer last said."""

    def __init__(self, node_name: str, health: Health) -> None:
        self.node_name = node_name
        self.health = health
        self.nodes: dict[str, Mapping[str, Any]] = {}
        self.listed = asyncio.Event()
        """Set once the informer listed the Nodes."""
        self.changed = asyncio.Event()
        """Set on every change; the route loop clears it."""

    def on_node(self, event: InformerEvent) -> None:
        if event.type == SYNC:
            self.nodes = {_name(o): o for o in event.items}
            self.listed.set()
        elif event.object is not None:
            if event.type == "DELETED":
                self.nodes.pop(_name(event.object), None)
            else:
                self.nodes[_name(event.object)] = event.object
        mine = self.nodes.get(self.node_name)
        self.health.node_eligible = not (mine and mine.get("metadata", {}).get("deletionTimestamp"))
        self.changed.set()

    async def follow_routes(self, mode: str, min_sync_period: float) -> None:
        """Keep the routes to other nodes' podCIDRs (`mode`: host-gw or vxlan) in line with the
        Node list, at most once per `min_sync_period`; removes nothing when it ends."""
        from net.routes.syncer import RouteSyncer

        syncer = RouteSyncer(self.node_name, mode=mode)
        try:
            await self.listed.wait()
            while True:
                await self.changed.wait()
                self.changed.clear()
                try:
                    await asyncio.to_thread(syncer.sync, list(self.nodes.values()))
                except Exception:
                    # still owed: the supervised restart syncs at once, not at the next change
                    self.changed.set()
                    raise
                await asyncio.sleep(min_sync_period)
        finally:
            await asyncio.to_thread(syncer.close)
