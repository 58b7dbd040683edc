"""RouteSyncer: the node-route job `pykubelet proxy` runs on every Node list change.
Plans with net.routes.plan and applies with net.routes.kernel in the caller's netns (blocking)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pyroute2 import IPRoute

from net.routes import kernel
from net.routes.plan import HOST_GW, VXLAN, RoutePlan, plan, vxlan_device

log = logging.getLogger(__name__)


class RouteSyncer:
    """Keeps this node's routes to the other nodes' pod CIDRs in line with the Node list.

    Only routes with protocol `kernel.RTPROT_PYKUBELET` and the VXLAN device are touched;
    routes of Nodes that went away are removed. Call `sync` from a worker thread or a blocking
    context (it does netlink I/O)."""

    def __init__(
        self,
        node_name: str,
        *,
        mode: str = HOST_GW,
        vxlan_id: int = 1,
        vxlan_port: int = 8472,
        device: str | None = None,
    ) -> None:
        plan(node_name, [], mode=mode, vxlan_id=vxlan_id, vxlan_port=vxlan_port)  # validates
        self.node_name = node_name
        self.mode = mode
        self.vxlan_id = vxlan_id
        self.vxlan_port = vxlan_port
        self.device = device
        self.last_plan: RoutePlan | None = None
        self.last_errors: list[str] = []
        self._ipr: IPRoute | None = None
        self._reported: set[str] = set()

    def _vxlan_device(self) -> str:
        return self.device or vxlan_device(self.vxlan_id)

    def sync(self, nodes: Sequence[Mapping[str, Any]]) -> None:
        """Plan from raw v1 Node dicts and apply. Kernel refusals of single routes are logged
        (and kept in `last_errors`), not raised; a broken netlink socket is reopened next time."""
        p = plan(
            self.node_name,
            nodes,
            mode=self.mode,
            vxlan_id=self.vxlan_id,
            vxlan_port=self.vxlan_port,
            device=self.device,
        )
        for line in p.skipped:
            if line not in self._reported:
                log.info("node routes: skipping %s", line)
        self._reported = set(p.skipped)
        if self._ipr is None:
            self._ipr = IPRoute()
        try:
            # in host-gw mode a leftover VXLAN device from an earlier vxlan run is removed
            stale_vx = self._vxlan_device() if self.mode == HOST_GW and not self.device else None
            errors = kernel.apply(self._ipr, p, vxlan_device=stale_vx)
        except Exception:
            self._ipr.close()
            self._ipr = None
            raise
        for line in errors:
            log.warning("node routes: %s", line)
        self.last_plan, self.last_errors = p, errors

    def remove(self) -> int:
        """Remove every route (and the VXLAN device) this syncer's node has; for teardown."""
        if self._ipr is None:
            self._ipr = IPRoute()
        dev = self._vxlan_device() if self.mode == VXLAN else None
        return kernel.remove_all(self._ipr, dev)

    def close(self) -> None:
        """Release the netlink socket. Routes stay: traffic keeps flowing while we restart."""
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
