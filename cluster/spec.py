"""What a local cluster is: its directory layout, addresses, ports, and each component's
command line.
Pure data and pure functions; nothing here starts a process or touches the disk.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIR = Path("/var/lib/pykubelet/cluster")
DEFAULT_CACHE = Path(os.environ.get("PYKUBELET_CACHE", str(Path.home() / ".cache" / "pykubelet")))


@dataclass(frozen=True)
class Binaries:
    """Where the Go-built programs live (the version-keyed cache of gobuild/build.sh)."""

    kubernetes: Path
    """Directory with kube-apiserver, kube-controller-manager, kube-scheduler, kubectl."""
    etcd: Path
    """The etcd executable (3.6.x from the module proxy, or Debian's 3.4 as a logged fallback)."""
    crictl: Path | None = None
    """crictl, used to tear pods down cleanly; optional."""

    def k8s(self, name: str) -> Path:
        return self.kubernetes / name


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 right now (for clusters that must coexist)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1. Tests pick free ones so a `pykubelet up` cluster can coexist."""

    apiserver: int = 6443
    etcd_client: int = 2379
    etcd_peer: int = 2380
    controller_manager: int = 10257
    scheduler: int = 10259
    kubelet: int = 10250
    """The node agent's :10250 API (one node per cluster shares this port)."""
    proxy_healthz: int = 10256
    """`pykubelet proxy` /healthz (per netns: simulated nodes each have their own)."""
    proxy_metrics: int = 10249
    """`pykubelet proxy` /metrics and /debug/* on 127.0.0.1 of the node's netns."""


class RuntimeDirs:
    """Where one containerd keeps its files below `directory` (a cluster's or a simulated node)."""

    directory: Path

    @property
    def containerd_root(self) -> Path:
        return self.directory / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.directory / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.directory / "run" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.directory / "containerd" / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.directory / "cni" / "net.d"


@dataclass(frozen=True)
class ClusterSpec(RuntimeDirs):
    """One local cluster: a directory that holds everything it makes, and its network choices."""

    directory: Path
    binaries: Binaries
    ports: Ports = field(default_factory=Ports)
    address: str = "127.0.0.1"
    """Where every control-plane component listens (loopback only)."""
    service_cidr: str = "10.0.0.0/24"
    cluster_cidr: str = "10.88.0.0/16"
    node_cidr_mask: int = 24
    bridge: str = "pykbr0"
    """Linux bridge of the provisional CNI config; removed by `down`."""
    node_names: tuple[str, ...] = ()
    """Nodes that get a client certificate and kubeconfig."""
    etcd_is_fallback: bool = False
    node_monitor_grace_period: str = "50s"
    """How long the node lifecycle controller waits before marking a silent node Unknown."""
    node_subnet: str = ""
    """`up --nodes N`: the IPv4 segment of the simulated nodes (a netns each, addresses .1..N,
    the root netns .254); empty runs one node agent on the host itself."""
    netns_prefix: str = "pyk"
    """Prefix of the simulated nodes' netns and links (per session in tests)."""
    route_mode: str = "host-gw"
    """How simulated nodes route to each other's pod CIDRs: host-gw or vxlan."""
    proxy_mode: str = "iptables"
    """The simulated nodes' `pykubelet proxy --proxy-mode`: iptables or nftables."""
    advertise_address: str = ""
    """`up --advertise-address`: an address of this host (e.g. on a VM bridge) the apiserver is
    reached at from other machines; it then listens on every address (kubeadm's 0.0.0.0) and
    its serving certificate names that address too. Empty: loopback only."""
    joinable: bool = False
    """`up --joinable`: bootstrap tokens, cluster-info and kubeadm's config ConfigMaps, so
    `kubeadm join` works; anonymous requests are then allowed (RBAC lets them read only
    cluster-info and the public /version, /healthz, /livez and /readyz)."""

    # ---- layout -------------------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    @property
    def run(self) -> Path:
        return self.directory / "run"

    @property
    def etcd_data(self) -> Path:
        return self.directory / "etcd"

    @property
    def cni_bin_dir(self) -> Path:
        return Path("/usr/lib/cni")

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.ports.apiserver}"

    def kubeconfig(self, who: str) -> Path:
        return self.directory / "kubeconfig" / f"{who}.kubeconfig"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig("admin")

    @property
    def first_service_ip(self) -> str:
        base, _ = self.service_cidr.split("/")
        octets = base.split(".")
        octets[-1] = str(int(octets[-1]) + 1)
        return ".".join(octets)


def etcd_command(spec: ClusterSpec) -> list[str]:
    p, a = spec.ports, spec.address
    cmd = [
        str(spec.binaries.etcd),
        "--name=default",
        f"--data-dir={spec.etcd_data}",
        f"--listen-client-urls=http://{a}:{p.etcd_client}",
        f"--advertise-client-urls=http://{a}:{p.etcd_client}",
        f"--listen-peer-urls=http://{a}:{p.etcd_peer}",
        f"--initial-advertise-peer-urls=http://{a}:{p.etcd_peer}",
        f"--initial-cluster=default=http://{a}:{p.etcd_peer}",
        "--listen-metrics-urls=",
        "--log-level=warn",
    ]
    if not spec.etcd_is_fallback:
        cmd.append("--unsafe-no-fsync")
    return cmd


def apiserver_command(spec: ClusterSpec) -> list[str]:
    pki = spec.pki
    return [
        str(spec.binaries.k8s("kube-apiserver")),
        f"--bind-address={'0.0.0.0' if spec.advertise_address else spec.address}",
        f"--advertise-address={spec.advertise_address or spec.address}",
        f"--secure-port={spec.ports.apiserver}",
        f"--etcd-servers=http://{spec.address}:{spec.ports.etcd_client}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'client-ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={spec.service_cidr}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--anonymous-auth={'true' if spec.joinable else 'false'}",
        "--enable-bootstrap-token-auth=true",
        "--allow-privileged=true",
        "--profiling=false",
        f"--cert-dir={spec.run / 'apiserver-certs'}",
        "--endpoint-reconciler-type=none",
    ]


def _delegated_auth(spec: ClusterSpec, who: str) -> list[str]:
    kc = spec.kubeconfig(who)
    return [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        f"--bind-address={spec.address}",
        f"--cert-dir={spec.run / (who + '-certs')}",
    ]


def controller_manager_command(spec: ClusterSpec) -> list[str]:
    pki = spec.pki
    return [
        str(spec.binaries.k8s("kube-controller-manager")),
        *_delegated_auth(spec, "controller-manager"),
        f"--secure-port={spec.ports.controller_manager}",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'server-ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'client-ca.crt'}",
        f"--cluster-signing-key-file={pki / 'client-ca.key'}",
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={spec.cluster_cidr}",
        f"--node-cidr-mask-size={spec.node_cidr_mask}",
        f"--service-cluster-ip-range={spec.service_cidr}",
        "--leader-elect=false",
        f"--node-monitor-grace-period={spec.node_monitor_grace_period}",
    ]


def scheduler_config(spec: ClusterSpec) -> str:
    """KubeSchedulerConfiguration YAML (leader election off: one scheduler)."""
    return (
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "clientConnection:\n"
        f"  kubeconfig: {spec.kubeconfig('scheduler')}\n"
        "leaderElection:\n"
        "  leaderElect: false\n"
    )


def scheduler_command(spec: ClusterSpec) -> list[str]:
    return [
        str(spec.binaries.k8s("kube-scheduler")),
        *_delegated_auth(spec, "scheduler"),
        f"--secure-port={spec.ports.scheduler}",
        f"--config={spec.directory / 'scheduler.yaml'}",
    ]


def containerd_command(spec: ClusterSpec) -> list[str]:
    return ["containerd", f"--config={spec.containerd_config}", "--log-level=info"]
