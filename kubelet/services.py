"""The node's view of Services for container environments: a list/watch cache of every Service and
the docker-link style variables built from it. Must not program proxy rules or write any object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import aclosing

from kube.apiserver import SYNC, Store
from kube.apiserver.informer import ListWatcher, list_then_watch
from kube.apiserver.requests import SERVICES
from kube.jsontypes import JsonMap

log = logging.getLogger(__name__)

MASTER_SERVICES = frozenset({"kubernetes"})
"""Services of the default namespace every pod gets variables for, even without service links."""
MASTER_NAMESPACE = "default"


def has_cluster_ip(service: JsonMap) -> bool:
    """Upstream's IsServiceIPSet: a ClusterIP that is neither empty nor None (headless)."""
    ip = service.get("spec", {}).get("clusterIP") or ""
    return ip not in ("", "None")


def env_name(name: str) -> str:
    """A Service or port name as a variable name part: upper case, dashes as underscores."""
    return name.replace("-", "_").upper()


def select_services(services: Iterable[JsonMap], namespace: str, *, links: bool) -> list[JsonMap]:
    """The Services whose variables a pod in `namespace` gets: the master services of the default
    namespace always, the pod's namespace's own ones when enableServiceLinks is on (a Service of
    the pod's namespace named like a master service replaces it)."""
    chosen: dict[str, JsonMap] = {}
    for svc in services:
        if not has_cluster_ip(svc):
            continue
        meta = svc.get("metadata", {})
        name, ns = str(meta.get("name", "")), str(meta.get("namespace", ""))
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and links:
            chosen[name] = svc
    return [chosen[k] for k in sorted(chosen)]


def _link_vars(prefix: str, ip: str, ports: list[JsonMap]) -> list[tuple[str, str]]:
    """Docker-link style variables: FOO_PORT for the first port, FOO_PORT_<n>_<PROTO>[_...]."""
    host = f"[{ip}]" if ":" in ip else ip
    out: list[tuple[str, str]] = []
    for i, port in enumerate(ports):
        proto = str(port.get("protocol") or "TCP")
        number = int(port.get("port", 0))
        url = f"{proto.lower()}://{host}:{number}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        base = f"{prefix}_PORT_{number}_{proto.upper()}"
        out += [
            (base, url),
            (f"{base}_PROTO", proto.lower()),
            (f"{base}_PORT", str(number)),
            (f"{base}_ADDR", ip),
        ]
    return out


def service_env(services: Iterable[JsonMap]) -> list[tuple[str, str]]:
    """Upstream's envvars.FromServices: FOO_SERVICE_HOST, FOO_SERVICE_PORT, one
    FOO_SERVICE_PORT_<NAME> per named port, then the docker-link variables."""
    out: list[tuple[str, str]] = []
    for svc in services:
        if not has_cluster_ip(svc):
            continue
        spec = svc.get("spec", {})
        ports: list[JsonMap] = list(spec.get("ports") or [])
        if not ports:
            continue
        prefix = env_name(str(svc.get("metadata", {}).get("name", "")))
        ip = str(spec["clusterIP"])
        out.append((f"{prefix}_SERVICE_HOST", ip))
        out.append((f"{prefix}_SERVICE_PORT", str(int(ports[0].get("port", 0)))))
        for port in ports:
            if port.get("name"):
                name = f"{prefix}_SERVICE_PORT_{env_name(str(port['name']))}"
                out.append((name, str(int(port.get("port", 0)))))
        out += _link_vars(prefix, ip, ports)
    return out


class ServiceCache:
    """Every Service of the cluster, kept by list-then-watch; run() is a supervised task."""

    def __init__(self, client: ListWatcher) -> None:
        self._client = client
        self.store = Store()
        self.synced = asyncio.Event()
        """Set once the first list has filled the store (upstream waits for this too)."""

    async def run(self) -> None:
        events = list_then_watch(self._client, SERVICES, store=self.store)
        async with aclosing(events) as stream:
            async for event in stream:
                if event.type == SYNC and not self.synced.is_set():
                    log.info("services listed: %d", len(self.store))
                    self.synced.set()

    async def wait_synced(self, within: float) -> bool:
        if not self.synced.is_set():
            try:
                await asyncio.wait_for(self.synced.wait(), within)
            except TimeoutError:
                return False
        return True

    def env(self, namespace: str, *, links: bool) -> dict[str, str]:
        """The service variables of a pod in `namespace`."""
        chosen = select_services(self.store.values(), namespace, links=links)
        return dict(service_env(chosen))
