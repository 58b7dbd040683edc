"""Fixtures for integration tests: one real cluster per session (the code `pykubelet up` runs),
built on free loopback ports in a temp dir and torn down by `down` even when tests fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import up as cluster
from cluster.spec import ClusterSpec, Ports, free_ports

NODE = "itest-node"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def root_required() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they start containerd and make netns)")


@pytest.fixture(scope="session")
def cluster_spec(
    root_required: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterSpec]:
    """A running cluster: etcd, apiserver, controller-manager, scheduler and containerd.
    Bridge and pod CIDR depend on the pid, so test sessions may run side by side."""
    directory = Path(tmp_path_factory.mktemp("cluster"))
    ports = Ports(*free_ports(6))
    spec = cluster.make_spec(
        directory,
        cluster.find_binaries(build=False),
        ports=ports,
        node_names=(NODE,),
        bridge=f"pykt{os.getpid() % 100000}",
        cluster_cidr=f"10.{100 + os.getpid() % 150}.0.0/16",
    )
    try:
        cluster.up(spec, with_nodes=False)
        yield spec
    finally:
        cluster.down(directory)


@pytest.fixture(scope="module")
def ns(cluster_spec: ClusterSpec) -> Iterator[str]:
    """Per test module: the node agent running on the session cluster, and a fresh namespace."""
    from .podutil import agent_namespace

    with agent_namespace(cluster_spec) as namespace:
        yield namespace
