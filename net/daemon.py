"""The node agent's network loop: serves the plugin socket and writes the conflist once the
node has a podCIDR. Owns no netlink code itself; the service runs on the server's worker."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from net import install
from net.config import parse_netconf
from net.server import PluginServer
from net.service import NetworkService
from net.settings import NetworkSettings

log = logging.getLogger(__name__)


class NetworkDaemon:
    """Start with `run(pod_cidr)`; `await pod_cidr()` is asked until it answers (the Node's
    spec.podCIDR as the heartbeat last saw it)."""

    def __init__(self, settings: NetworkSettings, poll: float = 1.0) -> None:
        self.settings = settings
        self.poll = poll
        self.service = NetworkService(settings.data_dir)
        self.server = PluginServer(settings.socket, self.service.handle)
        self.pod_cidr: str | None = None

    async def run(self, pod_cidr: Callable[[], Awaitable[str | None]]) -> None:
        s = self.settings
        if s.cni_bin_dir is not None:
            log.info("installed CNI plugin %s", install.install_plugin(s.cni_bin_dir))
        await self.server.start()
        try:
            while True:
                cidr = await pod_cidr()
                if cidr and cidr != self.pod_cidr:
                    await self._configure(cidr)
                await asyncio.sleep(self.poll if self.pod_cidr is None else 10 * self.poll)
        finally:
            await self.server.close()

    async def _configure(self, cidr: str) -> None:
        """Bridge and host rules first, then the conflist (which makes the runtime
        NetworkReady)."""
        s = self.settings
        text = install.conflist_text(
            bridge=s.bridge, pod_cidr=cidr, cluster_cidr=s.cluster_cidr, socket=self.server.path
        )
        conf = parse_netconf({**_plugin(text), "podCIDR": cidr})
        await self.server.run_in_worker(lambda: self.service.prepare(conf))
        if install.write_conflist(s.cni_conf_dir, text):
            log.info("wrote CNI conflist for podCIDR %s in %s", cidr, s.cni_conf_dir)
        self.pod_cidr = cidr


def _plugin(conflist: str) -> dict[str, object]:
    plugin: dict[str, object] = json.loads(conflist)["plugins"][0]
    return plugin
