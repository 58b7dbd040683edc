"""The pod's /etc/hosts as upstream's kubelet manages it: one file per pod, <pods>/<uid>/etc-hosts,
rewritten before each container starts and bind-mounted at /etc/hosts into it.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError
from kubelet.pods.dns import PodHostname
from kubelet.pods.model import Container, Pod
from kubelet.pods.seams import ContainerConfigError

log = logging.getLogger(__name__)

ETC_HOSTS = "/etc/hosts"
FILE_NAME = "etc-hosts"
MANAGED_HEADER = "# Kubernetes-managed hosts file.\n"
MANAGED_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
LOCALHOST_ENTRIES = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
FILE_MODE = 0o644


def host_aliases(pod: Pod) -> list[tuple[str, list[str]]]:
    """spec.hostAliases as (ip, hostnames), in the spec's order."""
    return [(a.ip, list(a.hostnames)) for a in pod.host_aliases]


def host_aliases_entries(aliases: Sequence[tuple[str, Sequence[str]]]) -> str:
    """A blank line, the HostAliases comment and one `ip<TAB>name<TAB>name` line per alias; empty
    when there are none."""
    if not aliases:
        return ""
    lines = "".join(f"{ip}\t{chr(9).join(names)}\n" for ip, names in aliases)
    return f"\n# Entries added by HostAliases.\n{lines}"


def managed_hosts_content(
    pod_ips: Sequence[str],
    hostname: str,
    domain: str,
    aliases: Sequence[tuple[str, Sequence[str]]] = (),
) -> str:
    """The header, the localhost entries, one line per pod IP (`ip<TAB>fqdn hostname` when the pod
    has a domain, else `ip<TAB>hostname`) and the hostAliases."""
    if domain:
        own = "".join(f"{ip}\t{hostname}.{domain}\t{hostname}\n" for ip in pod_ips)
    else:
        own = "".join(f"{ip}\t{hostname}\n" for ip in pod_ips)
    return MANAGED_HEADER + LOCALHOST_ENTRIES + own + host_aliases_entries(aliases)


def node_hosts_content(node_hosts: str, aliases: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """A hostNetwork pod's file: the host-network header, the node's /etc/hosts as it is, then the
    hostAliases (upstream 1.36 manages the file for hostNetwork pods too)."""
    return MANAGED_HEADER_HOST_NETWORK + node_hosts + host_aliases_entries(aliases)


def mounts_etc_hosts(container: Container) -> bool:
    """True when one of the container's volumeMounts is at /etc/hosts (then it keeps its own)."""
    return any(
        vm.mount_path and posixpath.normpath(vm.mount_path) == ETC_HOSTS
        for vm in container.volume_mounts
    )


def should_mount(pod: Pod, container: Container, pod_ips: Sequence[str]) -> bool:
    """Upstream's rule: the pod has an IP or is hostNetwork, and the container does not mount
    something at /etc/hosts itself."""
    return (bool(pod_ips) or pod.host_network) and not mounts_etc_hosts(container)


def hosts_content(
    pod: Pod, pod_ips: Sequence[str], host: PodHostname, node_hosts: str | None
) -> str:
    """The file for `pod`: the node's copy for hostNetwork pods (node_hosts is the node's
    /etc/hosts text), the managed content otherwise."""
    aliases = host_aliases(pod)
    if pod.host_network:
        return node_hosts_content(node_hosts or "", aliases)
    return managed_hosts_content(pod_ips, host.hostname, host.domain, aliases)


def etc_hosts_path(pods_dir: Path, uid: str) -> Path:
    return pods_dir / uid / FILE_NAME


def write_hosts_file(path: Path, content: str) -> None:
    """Rewrite in place (same inode: running containers' bind mounts see the new content), mode
    0644, as upstream's os.WriteFile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(content.encode("utf-8", errors="surrogateescape"))
    path.chmod(FILE_MODE)


class EtcHosts:
    """Writes each pod's hosts file and gives the mount for it; pod IPs come from the sandbox."""

    def __init__(
        self, runtime: RuntimeClient, pods_dir: Path, *, node_hosts: Path = Path(ETC_HOSTS)
    ) -> None:
        self.rt = runtime
        self.pods_dir = pods_dir
        self.node_hosts = node_hosts

    async def sandbox_ips(self, sandbox_id: str) -> list[str]:
        """The sandbox's IPs (primary first); ContainerConfigError when the runtime cannot say."""
        try:
            net = (await self.rt.pod_sandbox_status(sandbox_id)).status.network
        except CRIError as e:
            raise ContainerConfigError(f"reading the pod IPs for /etc/hosts: {e}") from None
        ips = [net.ip] if net.ip else []
        return ips + [a.ip for a in net.additional_ips if a.ip and a.ip not in ips]

    async def mount(
        self, pod: Pod, container: Container, sandbox_id: str, host: PodHostname
    ) -> list[api.Mount]:
        """[] or the one /etc/hosts mount for `container`, after (re)writing the pod's file."""
        if mounts_etc_hosts(container):
            return []
        pod_ips = [] if pod.host_network else await self.sandbox_ips(sandbox_id)
        if not should_mount(pod, container, pod_ips):
            return []
        node_hosts = None
        if pod.host_network:
            node_hosts = self.node_hosts.read_bytes().decode("utf-8", errors="surrogateescape")
        path = etc_hosts_path(self.pods_dir, pod.uid)
        write_hosts_file(path, hosts_content(pod, pod_ips, host, node_hosts))
        return [
            api.Mount(
                container_path=ETC_HOSTS, host_path=str(path), readonly=False, selinux_relabel=True
            )
        ]
