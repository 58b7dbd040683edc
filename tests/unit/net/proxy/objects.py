"""Raw Service / EndpointSlice / Node dicts and a recording iptables runner for the daemon tests."""

from __future__ import annotations

import subprocess
from typing import Any

from kube.apiserver import InformerEvent


def service(
    name: str,
    ip: str,
    port: int = 80,
    *,
    proto: str = "TCP",
    namespace: str = "default",
    node_port: int | None = None,
    **spec: Any,
) -> dict[str, Any]:
    p: dict[str, Any] = {"name": "p", "port": port, "protocol": proto}
    if node_port:
        p["nodePort"] = node_port
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "type": "NodePort" if node_port else "ClusterIP",
            "clusterIP": ip,
            "ports": [p],
            **spec,
        },
    }


def endpoint_slice(
    name: str,
    svc: str,
    ips: list[str],
    port: int = 8080,
    *,
    proto: str = "TCP",
    namespace: str = "default",
    trigger: str | None = None,
    ready: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "labels": {"kubernetes.io/service-name": svc},
    }
    if trigger:
        meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
    return {
        "metadata": meta,
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": port, "protocol": proto}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips],
    }


def node(name: str, ip: str, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def sync(*items: dict[str, Any]) -> InformerEvent:
    return InformerEvent("SYNC", items=tuple(items))


def added(obj: dict[str, Any]) -> InformerEvent:
    return InformerEvent("ADDED", obj)


def modified(obj: dict[str, Any]) -> InformerEvent:
    return InformerEvent("MODIFIED", obj)


def deleted(obj: dict[str, Any]) -> InformerEvent:
    return InformerEvent("DELETED", obj)


class Kernel:
    """Stands in for iptables-restore/-save/iptables and conntrack: records what they are fed."""

    def __init__(self) -> None:
        self.restores: list[str] = []
        self.commands: list[list[str]] = []
        self.fail_next: str | None = None
        """stderr of the next restore, which then fails ({last_commit}: the line of its last
        COMMIT, where nf_tables reports a table it could not commit)."""
        self.conntrack_deleted = 1
        self.saved: dict[str, str] = {}
        """What iptables-save prints, per table (empty when not set)."""

    def __call__(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(cmd)
        if cmd[0].endswith("-restore") or cmd[:2] == ["ipset", "restore"]:
            if self.fail_next is not None:
                err, self.fail_next = self.fail_next, None
                lines = kw["input"].splitlines()
                last = max(i for i, ln in enumerate(lines, 1) if ln == "COMMIT")
                return subprocess.CompletedProcess(
                    cmd, 2, "", err.replace("{last_commit}", str(last))
                )
            self.restores.append(kw["input"])
        if cmd[0].endswith("-save") and "-t" in cmd:
            table = cmd[cmd.index("-t") + 1]
            return subprocess.CompletedProcess(cmd, 0, self.saved.get(table, ""), "")
        if cmd[0] == "conntrack":
            err = f"conntrack v1.4.7: {self.conntrack_deleted} flow entries have been deleted.\n"
            return subprocess.CompletedProcess(cmd, 0, "", err)
        return subprocess.CompletedProcess(cmd, 0, "", "")
