"""Keeps this node known and fresh at the apiserver: registration, the status loop, the Lease.
Executor only: what to write comes from node.status; when to write is decided there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kube.apiserver import (
    LEASES,
    NODES,
    AlreadyExists,
    ApiClient,
    ApiError,
    Conflict,
    NotFound,
    PatchType,
)
from kube.facts import MachineFacts
from kube.jsontypes import JsonObject
from kubelet.node import status as nodestatus

log = logging.getLogger(__name__)
LEASE_NAMESPACE = "kube-node-lease"


def now_rfc3339(micro: bool = False) -> str:
    t = datetime.datetime.now(datetime.UTC)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def lease_body(node: str, node_uid: str, duration: int, renew: str) -> JsonObject:
    """The node's Lease in kube-node-lease, owned by its Node (so it goes when the Node goes)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
            ],
        },
        "spec": {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": renew},
    }


@dataclass
class NodeHeartbeat:
    """Registration, status writes and Lease renewals for one node."""

    client: ApiClient
    ident: nodestatus.NodeIdentity
    facts: Callable[[], MachineFacts]
    health: Callable[[], nodestatus.Health]
    max_pods: int = 110
    status_every: float = 10.0
    report_every: float = 300.0
    lease_every: float = 10.0
    lease_duration: int = 40
    node_uid: str = ""
    pod_cidr: str | None = None
    allocatable: Callable[[MachineFacts], dict[str, str]] | None = None
    """status.allocatable from the facts (node.allocatable); None: capacity less hugepages."""
    record: Callable[[str], None] | None = None
    """Records a Node status event by reason (NodeHasDiskPressure...) once it is written."""
    _written: JsonObject = field(default_factory=dict)
    _conditions: list[JsonObject] = field(default_factory=list)
    """The Node's conditions as last written or found at registration (an adopted Node keeps
    its transition times, and a restarted agent records only real transitions)."""
    _written_at: float = 0.0
    registered: asyncio.Event = field(default_factory=asyncio.Event)

    async def register(self) -> None:
        """POST the Node; an existing one is adopted (labels, taints are set only at creation)."""
        body = nodestatus.registration(self.ident, self.facts())
        try:
            node = await self.client.create(NODES, body)
            log.info("node %s registered", self.ident.name)
        except AlreadyExists:
            node = await self.client.get(NODES, self.ident.name)
            log.info("node %s already registered; adopting it", self.ident.name)
        self.node_uid = node["metadata"]["uid"]
        self.pod_cidr = node.get("spec", {}).get("podCIDR") or self.pod_cidr
        self._conditions = list((node.get("status") or {}).get("conditions") or [])
        self._written = {}
        self.registered.set()

    async def sync_status(self) -> None:
        """Compute the status; write it when something changed or the report interval passed."""
        now = now_rfc3339()
        facts = self.facts()
        new = nodestatus.node_status(
            self.ident,
            facts,
            self.health(),
            previous={"conditions": self._conditions},
            now=now,
            max_pods=self.max_pods,
            alloc=self.allocatable(facts) if self.allocatable is not None else None,
        )
        since = time.monotonic() - self._written_at
        due = not self._written or nodestatus.write_due(
            self._written, new, seconds_since_write=since, report_every=self.report_every
        )
        try:
            if not due:  # still look, so a deleted Node is noticed within one period
                await self.client.get(NODES, self.ident.name)
                return
            node = await self.client.patch(
                NODES,
                self.ident.name,
                {"status": new},
                subresource="status",
                patch_type=PatchType.STRATEGIC,
            )
        except NotFound:
            log.warning("node %s was deleted; registering it again", self.ident.name)
            self.registered.clear()
            await self.register()
            return
        self.pod_cidr = node.get("spec", {}).get("podCIDR") or self.pod_cidr
        self._written, self._written_at = new, time.monotonic()
        transitions = nodestatus.condition_events(self._conditions, new["conditions"])
        self._conditions = new["conditions"]
        if self.record is not None:
            for reason in transitions:
                self.record(reason)

    async def renew_lease(self) -> None:
        body = lease_body(
            self.ident.name, self.node_uid, self.lease_duration, now_rfc3339(micro=True)
        )
        try:
            current = await self.client.get(LEASES, self.ident.name, namespace=LEASE_NAMESPACE)
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                await self.client.create(LEASES, body, namespace=LEASE_NAMESPACE)
            return
        current["spec"] = {**current.get("spec", {}), **body["spec"]}
        try:
            await self.client.replace(LEASES, current, namespace=LEASE_NAMESPACE)
        except Conflict:
            log.debug("lease %s changed under us; next renewal retries", self.ident.name)

    async def status_loop(self) -> None:
        """Register first (a failure restarts this supervised loop), then keep status fresh."""
        if not self.registered.is_set():
            await self.register()
        while True:
            await self.sync_status()
            await asyncio.sleep(self.status_every)

    async def lease_loop(self) -> None:
        """Renew every lease_every seconds; on errors retry sooner, at most lease_every apart."""
        await self.registered.wait()
        delay = 0.2
        while True:
            try:
                await self.renew_lease()
            except ApiError as e:
                log.warning("renewing lease of node %s failed: %s", self.ident.name, e)
                await asyncio.sleep(delay)
                delay = min(self.lease_every, delay * 2)
                continue
            delay = 0.2
            await asyncio.sleep(self.lease_every)
