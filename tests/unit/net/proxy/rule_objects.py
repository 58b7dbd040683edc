"""Raw Service / EndpointSlice dicts and a small iptables-restore interpreter for rule-model tests.
The interpreter applies restore text to an in-memory {table: {chain: [rules]}} like the kernel.
"""

from __future__ import annotations

from typing import Any

from net.proxy.model import ClusterState, ProxyConfig, state_from_objects

NODE = "node-a"
CONFIG = ProxyConfig(NODE, ("192.168.5.2",), cluster_cidr="10.244.0.0/16")


def svc(
    name: str,
    ip: str,
    ports: list[dict[str, Any]] | None = None,
    *,
    namespace: str = "ns",
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "clusterIP": ip,
            "ports": ports if ports is not None else [{"name": "p", "port": 80}],
            **spec,
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def ep(ip: str, node: str | None = None, **conditions: bool) -> dict[str, Any]:
    e: dict[str, Any] = {"addresses": [ip]}
    if node:
        e["nodeName"] = node
    if conditions:
        e["conditions"] = conditions
    return e


def eps(
    service: str,
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]] | None = None,
    *,
    namespace: str = "ns",
    name: str | None = None,
    address_type: str = "IPv4",
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": namespace,
            "name": name or f"{service}-abc",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": address_type,
        "ports": ports if ports is not None else [{"name": "p", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def state(services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> ClusterState:
    return state_from_objects(services, slices)


Kernel = dict[str, dict[str, list[str]]]


class RestoreError(Exception):
    pass


def apply_restore(kernel: Kernel, text: str) -> None:
    """Apply `iptables-restore --noflush` text to `kernel` (in place), failing like the real
    tool would on a missing rule or chain, or on deleting a chain that is still referenced."""
    table: dict[str, list[str]] | None = None
    staged: Kernel = {t: {c: list(r) for c, r in chains.items()} for t, chains in kernel.items()}
    for n, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = staged.setdefault(line[1:], {})
            continue
        if line == "COMMIT":
            table = None
            continue
        if table is None:
            raise RestoreError(f"line {n}: outside a table")
        if line.startswith(":"):
            table[line[1:].split()[0]] = []
            continue
        op, chain, *rest = line.split(" ", 2)
        body = rest[0] if rest else ""
        if op == "-X":
            if chain not in table:
                raise RestoreError(f"line {n}: no chain {chain}")
            if any(r.endswith(f"-j {chain}") for rules in table.values() for r in rules):
                raise RestoreError(f"line {n}: chain {chain} still referenced")
            del table[chain]
            continue
        if chain not in table:
            raise RestoreError(f"line {n}: no chain {chain}")
        if op == "-A":
            table[chain].append(body)
        elif op == "-I":
            pos, _, body = body.partition(" ")
            table[chain].insert(int(pos) - 1, body)
        elif op == "-D":
            if body not in table[chain]:
                raise RestoreError(f"line {n}: rule not found in {chain}: {body}")
            table[chain].remove(body)
        else:
            raise RestoreError(f"line {n}: unknown {op}")
        target = body.rsplit("-j ", 1)[-1].split()[0] if "-j " in body else ""
        if target.startswith("KUBE-") and target not in table:
            raise RestoreError(f"line {n}: jump to missing chain {target}")
    kernel.clear()
    kernel.update(staged)
