"""Component command lines carry the security settings the control plane must run with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster.spec import (
    Binaries,
    ClusterSpec,
    Ports,
    apiserver_command,
    controller_manager_command,
    etcd_command,
)


def _spec(**kw: Any) -> ClusterSpec:
    return ClusterSpec(
        directory=Path("/c"),
        binaries=Binaries(Path("/b"), Path("/b/etcd")),
        ports=Ports(apiserver=7443),
        **kw,
    )


def test_apiserver_is_secure_only_with_node_authz() -> None:
    cmd = apiserver_command(_spec())
    assert "--authorization-mode=Node,RBAC" in cmd
    assert "--enable-admission-plugins=NodeRestriction" in cmd
    assert "--allow-privileged=true" in cmd
    assert "--anonymous-auth=false" in cmd
    assert "--secure-port=7443" in cmd
    assert not any(a.startswith("--insecure") for a in cmd)


def test_controller_manager_allocates_cidrs_and_publishes_root_ca() -> None:
    cmd = controller_manager_command(_spec(cluster_cidr="10.9.0.0/16"))
    assert "--allocate-node-cidrs=true" in cmd
    assert "--cluster-cidr=10.9.0.0/16" in cmd
    assert "--root-ca-file=/c/pki/server-ca.crt" in cmd


def test_etcd_fallback_drops_flags_it_lacks() -> None:
    assert "--unsafe-no-fsync" in etcd_command(_spec())
    assert "--unsafe-no-fsync" not in etcd_command(_spec(etcd_is_fallback=True))


def test_first_service_ip() -> None:
    assert _spec(service_cidr="10.0.0.0/24").first_service_ip == "10.0.0.1"
