"""The command line `pykubelet up` runs the proxy with, one per node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster import process, proxyproc
from cluster.spec import Binaries, ClusterSpec, Ports


def _spec(tmp_path: Path) -> ClusterSpec:
    return ClusterSpec(
        directory=tmp_path,
        binaries=Binaries(kubernetes=tmp_path, etcd=tmp_path / "etcd"),
        ports=Ports(proxy_healthz=20256, proxy_metrics=20249),
        cluster_cidr="10.99.0.0/16",
    )


def test_proxy_command_uses_the_kube_proxy_identity_and_upstream_flags(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    cmd = proxyproc.proxy_command(spec, "node-a", node_routes="host-gw", extra_args=["--v=4"])
    assert cmd[1:4] == ["-m", "pykubelet.cli", "proxy"]
    assert f"--kubeconfig={tmp_path / 'kubeconfig' / 'kube-proxy.kubeconfig'}" in cmd
    assert "--hostname-override=node-a" in cmd
    assert "--cluster-cidr=10.99.0.0/16" in cmd
    assert "--healthz-bind-address=0.0.0.0:20256" in cmd
    assert "--metrics-bind-address=127.0.0.1:20249" in cmd
    assert "--node-routes=host-gw" in cmd and cmd[-1] == "--v=4"
    assert not any(a.startswith("--iptables-localhost-nodeports") for a in cmd)
    root = proxyproc.proxy_command(spec, "node-a", localhost_nodeports=False)
    assert "--iptables-localhost-nodeports=false" in root  # leaves the host's sysctl alone


def test_daemon_names_are_per_node(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    a, b = proxyproc.proxy_daemon(spec, "a"), proxyproc.proxy_daemon(spec, "b")
    assert a.pid_file != b.pid_file and a.log_file.name == "pykubelet-proxy-a.log"
    assert not proxyproc.ran_in_root_netns(spec.run)


def test_root_netns_lock_admits_one_holder(tmp_path: Path) -> None:
    lock = tmp_path / "run" / "root.lock"
    with proxyproc.root_netns_lock(lock) as fd:
        os.pwrite(fd, b"cluster /c1, node n\n", 0)
        with (
            pytest.raises(process.ComponentFailed, match=r"cluster /c1, node n.*pykubelet down"),
            proxyproc.root_netns_lock(lock),
        ):
            pass
    with proxyproc.root_netns_lock(lock):  # released with its fd
        pass


def test_cleanup_root_netns_only_after_a_root_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path)
    lock = tmp_path / "lock"
    monkeypatch.setattr(proxyproc, "ROOT_NETNS_LOCK", lock)
    calls: list[str | None] = []

    def remove_rules(netns: str | None = None) -> str:
        calls.append(netns)
        return "ok"

    monkeypatch.setattr(proxyproc, "remove_rules", remove_rules)
    assert proxyproc.cleanup_root_netns(spec) is None and calls == []
    spec.run.mkdir(parents=True)
    (spec.run / proxyproc.ROOT_NETNS_MARK).touch()
    with proxyproc.root_netns_lock(lock), pytest.raises(process.ComponentFailed):
        proxyproc.cleanup_root_netns(spec)  # another cluster's proxy owns the rules now
    assert calls == []
    assert proxyproc.cleanup_root_netns(spec) == "ok" and calls == [None]
    assert not proxyproc.ran_in_root_netns(spec.run)
