"""The pod's managed /etc/hosts: exact file contents (upstream's layout), when it is mounted, the
in-place rewrite, and the mount the executor adds, against the fake CRI runtime.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cri import api
from cri.client import RuntimeClient
from cri.fake import FakeRuntimeServer
from kubelet.pods.backoff import BackOff
from kubelet.pods.decode import pod_from_api
from kubelet.pods.dns import DNSConfigurer, PodHostname
from kubelet.pods.etchosts import (
    ETC_HOSTS,
    EtcHosts,
    etc_hosts_path,
    host_aliases,
    hosts_content,
    managed_hosts_content,
    node_hosts_content,
    should_mount,
    write_hosts_file,
)
from kubelet.pods.executor import PodExecutor
from kubelet.pods.model import Container, Pod, Waiting
from kubelet.pods.seams import ContainerConfigError
from tests.unit.cri.helpers import sandbox_config

LOCALHOST = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
ALIASES = [
    {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
    {"ip": "10.1.2.4", "hostnames": ["baz.remote"]},
]
ALIAS_LINES = (
    "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n10.1.2.4\tbaz.remote\n"
)


def pod_json(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "team", "uid": "u1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def pod(**spec: Any) -> Pod:
    return pod_from_api(pod_json(**spec))


def container(c: dict[str, Any]) -> Container:
    """A container spec as the decoder reads it."""
    return pod_from_api(pod_json(containers=[c])).containers[0]


@pytest.mark.parametrize(
    ("ips", "hostname", "domain", "aliases", "expected"),
    [
        (
            ["10.88.0.5"],
            "web",
            "",
            [],
            "# Kubernetes-managed hosts file.\n" + LOCALHOST + "10.88.0.5\tweb\n",
        ),
        (
            ["10.88.0.5", "fd00::5"],
            "box",
            "grp.team.svc.cluster.local",
            [],
            "# Kubernetes-managed hosts file.\n"
            + LOCALHOST
            + "10.88.0.5\tbox.grp.team.svc.cluster.local\tbox\n"
            + "fd00::5\tbox.grp.team.svc.cluster.local\tbox\n",
        ),
        (
            ["10.88.0.5"],
            "web",
            "",
            [("10.1.2.3", ["foo.local", "bar.local"]), ("10.1.2.4", ["baz.remote"])],
            "# Kubernetes-managed hosts file.\n" + LOCALHOST + "10.88.0.5\tweb\n" + ALIAS_LINES,
        ),
        ([], "web", "", [], "# Kubernetes-managed hosts file.\n" + LOCALHOST),
    ],
)
def test_managed_hosts_content(
    ips: list[str],
    hostname: str,
    domain: str,
    aliases: list[tuple[str, list[str]]],
    expected: str,
) -> None:
    assert managed_hosts_content(ips, hostname, domain, aliases) == expected


def test_node_hosts_content() -> None:
    node = "127.0.0.1 localhost\n192.168.1.5 node1\n"
    assert node_hosts_content(node) == "# Kubernetes-managed hosts file (host network).\n" + node
    with_aliases = node_hosts_content(node, host_aliases(pod(hostAliases=ALIASES)))
    assert with_aliases == "# Kubernetes-managed hosts file (host network).\n" + node + ALIAS_LINES


def test_hosts_content_picks_by_host_network() -> None:
    host = PodHostname("web", "", "web")
    managed = hosts_content(pod(hostAliases=ALIASES), ["10.0.0.9"], host, "ignored")
    assert managed.startswith("# Kubernetes-managed hosts file.\n") and "10.0.0.9\tweb\n" in managed
    node = hosts_content(pod(hostNetwork=True), [], host, "1.2.3.4 n\n")
    assert node == "# Kubernetes-managed hosts file (host network).\n1.2.3.4 n\n"


@pytest.mark.parametrize(
    ("spec", "mounts", "ips", "expected"),
    [
        ({}, [], ["10.0.0.1"], True),
        ({}, [], [], False),
        ({"hostNetwork": True}, [], [], True),
        ({}, [{"name": "h", "mountPath": "/etc/hosts"}], ["10.0.0.1"], False),
        ({}, [{"name": "h", "mountPath": "/etc//hosts/"}], ["10.0.0.1"], False),
        ({"hostNetwork": True}, [{"name": "h", "mountPath": "/etc/hosts"}], [], False),
        ({}, [{"name": "e", "mountPath": "/etc/hosts.d"}], ["10.0.0.1"], True),
    ],
)
def test_should_mount(
    spec: dict[str, Any], mounts: list[dict[str, str]], ips: list[str], expected: bool
) -> None:
    c = container({"name": "c", "image": "busybox", "volumeMounts": mounts})
    assert should_mount(pod(**spec), c, ips) is expected


def test_write_hosts_file_in_place(tmp_path: Path) -> None:
    path = etc_hosts_path(tmp_path / "pods", "u1")
    assert path == tmp_path / "pods" / "u1" / "etc-hosts"
    write_hosts_file(path, "first, longer content\n")
    inode = path.stat().st_ino
    os.chmod(path, 0o600)
    write_hosts_file(path, "second\n")
    assert path.read_text() == "second\n"
    assert path.stat().st_ino == inode  # a bind mount of the old inode sees the new content
    assert path.stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------- against a runtime


@pytest.fixture
async def runtime() -> AsyncIterator[RuntimeClient]:
    async with FakeRuntimeServer() as srv, RuntimeClient(srv.endpoint) as cli:
        yield cli


async def test_mount_uses_the_sandbox_ip(runtime: RuntimeClient, tmp_path: Path) -> None:
    sid = await runtime.run_pod_sandbox(sandbox_config(uid="u1"))
    ip = (await runtime.pod_sandbox_status(sid)).status.network.ip
    hosts = EtcHosts(runtime, tmp_path / "pods")
    p = pod(hostAliases=ALIASES, subdomain="grp")
    host = PodHostname("web", "grp.team.svc.cluster.local", "web")
    mounts = await hosts.mount(p, p.containers[0], sid, host)
    path = tmp_path / "pods" / "u1" / "etc-hosts"
    assert mounts == [
        api.Mount(container_path=ETC_HOSTS, host_path=str(path), selinux_relabel=True)
    ]
    assert path.read_text() == (
        "# Kubernetes-managed hosts file.\n"
        + LOCALHOST
        + f"{ip}\tweb.grp.team.svc.cluster.local\tweb\n"
        + ALIAS_LINES
    )
    own = {"name": "c", "image": "busybox", "volumeMounts": [{"name": "x", "mountPath": ETC_HOSTS}]}
    assert await hosts.mount(p, container(own), sid, host) == []


async def test_mount_for_host_network_copies_the_node_file(
    runtime: RuntimeClient, tmp_path: Path
) -> None:
    node = tmp_path / "node-hosts"
    node.write_text("127.0.0.1 localhost\n10.0.0.1 node1\n")
    hosts = EtcHosts(runtime, tmp_path / "pods", node_hosts=node)
    p = pod(hostNetwork=True, hostAliases=ALIASES[:1])
    mounts = await hosts.mount(p, p.containers[0], "no-such-sandbox", PodHostname("w"))
    assert [m.host_path for m in mounts] == [str(tmp_path / "pods" / "u1" / "etc-hosts")]
    assert _read(mounts[0].host_path) == (
        "# Kubernetes-managed hosts file (host network).\n"
        "127.0.0.1 localhost\n10.0.0.1 node1\n"
        "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"
    )


async def test_mount_when_the_runtime_cannot_say(runtime: RuntimeClient, tmp_path: Path) -> None:
    hosts = EtcHosts(runtime, tmp_path / "pods")
    p = pod()
    with pytest.raises(ContainerConfigError, match="pod IPs for /etc/hosts"):
        await hosts.mount(p, p.containers[0], "no-such-sandbox", PodHostname("web"))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def record(self, event: Any) -> None:
        self.events.append(event)


async def test_executor_adds_the_mount(runtime: RuntimeClient, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.2\n")
    executor = PodExecutor(
        runtime,
        _Recorder(),  # type: ignore[arg-type]
        log_root="/logs",
        pods_dir=tmp_path / "pods",
        backoff=BackOff(),
        memory_capacity=1 << 30,
        dns=DNSConfigurer(resolv_conf=str(resolv), cluster_domain="cluster.local"),
        etc_hosts=EtcHosts(runtime, tmp_path / "pods"),
    )
    p = pod_json(hostname="box", subdomain="grp")
    model = pod_from_api(p)
    sid = await runtime.run_pod_sandbox(executor.sandbox_config(p, model, 0, creating=True))
    spec = p["spec"]["containers"][0]
    container = model.container("c")
    assert container is not None
    config = await executor._config(p, model, spec, container, 0, "f", sandbox_id=sid)
    assert not isinstance(config, Waiting)
    by_path = {m.container_path: m.host_path for m in config.mounts}
    assert by_path[ETC_HOSTS] == str(tmp_path / "pods" / "u1" / "etc-hosts")
    assert "\tbox.grp.team.svc.cluster.local\tbox\n" in _read(by_path[ETC_HOSTS])
