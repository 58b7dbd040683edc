"""Simulated nodes of `pykubelet up --nodes N`: a netns "host" each on one L2 segment, with its
own containerd, node agent, apiserver forwarder and proxy; their layout, start and removal."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cluster import containerd, hostops, images, nsforward, process, proxyproc
from cluster import segment as segment_
from cluster.spec import DEFAULT_CACHE, ClusterSpec, RuntimeDirs
from net import netns

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
ROOT_HOST = 254
"""Host number of the root netns on the segment (nodes are 1..N)."""
MAX_NODES = 250
NODE_BRIDGE = "pykbr0"
"""Pod bridge inside each node's netns (per netns, so one name fits every node)."""


@dataclass(frozen=True)
class SimNode(RuntimeDirs):
    """One simulated node: its netns, its address on the segment and its own directories."""

    name: str
    index: int
    netns: str
    address: str
    directory: Path

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def cni_bin_dir(self) -> Path:
        return self.directory / "cni" / "bin"

    @property
    def root_dir(self) -> Path:
        return self.directory / "root"

    @property
    def uplink(self) -> str:
        """The node's interface on the segment (inside its netns)."""
        return "eth0"


def segment(spec: ClusterSpec) -> ipaddress.IPv4Network:
    net = ipaddress.ip_network(spec.node_subnet, strict=False)
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 24:
        raise ValueError(f"node subnet {spec.node_subnet}: must be an IPv4 /24 or larger")
    return net


def switch_netns(spec: ClusterSpec) -> str:
    return f"{spec.netns_prefix}-sw"


def root_link(spec: ClusterSpec) -> str:
    """The root netns's veth on the segment (its peer sits on the switch bridge)."""
    return f"{spec.netns_prefix}-up"[:15]


def root_address(spec: ClusterSpec) -> str:
    return str(segment(spec).network_address + ROOT_HOST)


def sim_nodes(spec: ClusterSpec) -> list[SimNode]:
    """The simulated nodes of a spec with a node subnet, in order (pure)."""
    if not spec.node_subnet:
        return []
    if len(spec.node_names) > MAX_NODES:
        raise ValueError(f"at most {MAX_NODES} simulated nodes, asked for {len(spec.node_names)}")
    base = segment(spec).network_address
    return [
        SimNode(
            name=name,
            index=i,
            netns=f"{spec.netns_prefix}-n{i}",
            address=str(base + i),
            directory=spec.directory / "nodes" / name,
        )
        for i, name in enumerate(spec.node_names, start=1)
    ]


# ---- the segment ------------------------------------------------------------------------------
def _ip(*args: str) -> None:
    try:
        segment_.ip(*args)
    except segment_.SegmentError as e:
        raise process.ComponentFailed(str(e)) from None


def build_segment(spec: ClusterSpec, *, say: Progress) -> None:
    """The switch netns with a bridge, a netns per node with eth0 on it, and the root netns
    joined with an address (idempotent: netns that exist are kept as they are)."""
    prefix = segment(spec).prefixlen
    other = [r for r in root_routes(spec.node_subnet) if r.get("dev") != root_link(spec)]
    if other:
        raise process.ComponentFailed(
            f"node subnet {spec.node_subnet} overlaps {other[0].get('dst')} on "
            f"{other[0].get('dev')} in the root netns; choose another --node-subnet"
        )
    members = [segment_.Member(n.netns, f"{n.address}/{prefix}") for n in sim_nodes(spec)]
    try:
        segment_.build(
            switch_netns(spec),
            members,
            root=(root_link(spec), f"{root_address(spec)}/{prefix}"),
            forwarding=True,
            default_route=True,
        )
    except segment_.SegmentError as e:
        raise process.ComponentFailed(str(e)) from None
    nodes = ", ".join(f"{n.name}={n.address}" for n in sim_nodes(spec))
    say(f"segment {spec.node_subnet}: root {root_address(spec)} on {root_link(spec)}, {nodes}")


def route_pod_cidrs_from_root(spec: ClusterSpec, pod_cidrs: dict[str, list[str]]) -> None:
    """Root netns routes to every node's pod CIDRs via its segment address (they go away with
    the root veth in `down`)."""
    for n in sim_nodes(spec):
        for cidr in pod_cidrs.get(n.name, []):
            if ipaddress.ip_network(cidr).version != 4:
                continue
            other = [r for r in root_routes(cidr) if r.get("dev") != root_link(spec)]
            if other:
                raise process.ComponentFailed(
                    f"node {n.name}: pod CIDR {cidr} is already routed in the root netns "
                    f"({other[0].get('dst')} dev {other[0].get('dev')}): another cluster? "
                    "choose another --cluster-cidr"
                )
            _ip("route", "replace", cidr, "via", n.address, "dev", root_link(spec))


def root_routes(cidr: str) -> list[dict[str, str]]:
    """Root netns IPv4 routes overlapping `cidr` (main table), from `ip -j`."""
    net = ipaddress.ip_network(cidr, strict=False)
    r = subprocess.run(["ip", "-j", "-4", "route", "show"], capture_output=True, text=True)
    try:
        routes = json.loads(r.stdout or "[]")
    except ValueError:
        return []
    out = []
    for route in routes:
        dst = str(route.get("dst", ""))
        if dst == "default":
            continue
        try:
            if ipaddress.ip_network(dst, strict=False).overlaps(net):
                out.append({k: str(v) for k, v in route.items() if isinstance(v, str)})
        except ValueError:
            continue
    return out


# ---- daemons ----------------------------------------------------------------------------------
def daemon(spec: ClusterSpec, kind: str, node: SimNode) -> process.Daemon:
    return process.Daemon(name=f"{kind}-{node.name}", run_dir=spec.run, log_dir=spec.logs)


def _ctr_ready(sock: Path) -> Callable[[], bool]:
    def ready() -> bool:
        cmd = ["ctr", "--address", str(sock), "version"]
        return subprocess.run(cmd, capture_output=True, timeout=5).returncode == 0

    return ready


def start_containerd(spec: ClusterSpec, node: SimNode, *, say: Progress) -> None:
    """The node's own containerd (root, state, socket, CNI dirs), in the node's netns."""
    from net import install

    for path in (
        node.containerd_root,
        node.containerd_state,
        node.cni_conf_dir,
        node.containerd_socket.parent,
    ):
        path.mkdir(parents=True, exist_ok=True)
    node.containerd_config.write_text(
        containerd.render_config(
            root=node.containerd_root,
            state=node.containerd_state,
            socket=node.containerd_socket,
            cni_bin_dir=node.cni_bin_dir,
            cni_conf_dir=node.cni_conf_dir,
            sandbox_image=images.PAUSE_IMAGE,
        )
    )
    install.install_plugin(node.cni_bin_dir)
    d = daemon(spec, "containerd", node)
    cmd = ["containerd", f"--config={node.containerd_config}", "--log-level=info"]
    process.start(d, cmd, netns=node.netns)
    waited = process.wait_ready(d, _ctr_ready(node.containerd_socket), timeout=30)
    archives = images.build_images(DEFAULT_CACHE / "images")
    images.import_images(address=node.containerd_socket, archives=archives)
    say(f"{node.name}: containerd ready ({waited:.1f}s), images imported")


def tcp_open_in_netns(netns_path: str, port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connect to host:port succeeds from inside the netns (on a worker thread,
    since entering a netns changes the calling thread)."""

    def attempt() -> bool:
        with netns.entered(netns_path), socket.create_connection((host, port), timeout=1):
            return True

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        try:
            return ex.submit(attempt).result(timeout=5)
        except OSError:
            return False


def start_forwarder(spec: ClusterSpec, node: SimNode) -> None:
    """127.0.0.1:<apiserver port> inside the node's netns -> the root netns's apiserver."""
    d = daemon(spec, "nsforward", node)
    process.start(d, nsforward.forward_command(node.netns_path, [spec.ports.apiserver]))
    port = spec.ports.apiserver
    process.wait_ready(d, lambda: tcp_open_in_netns(node.netns_path, port), timeout=15)


def agent_env(spec: ClusterSpec, node: SimNode) -> dict[str, str]:
    return {
        "PYKUBELET_CNI_CONF_DIR": str(node.cni_conf_dir),
        "PYKUBELET_CNI_BIN_DIR": str(node.cni_bin_dir),
        "PYKUBELET_CNI_BRIDGE": NODE_BRIDGE,
        "PYKUBELET_CLUSTER_CIDR": spec.cluster_cidr,
    }


def agent_command(spec: ClusterSpec, node: SimNode, config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pykubelet.cli",
        "run",
        f"--config={config}",
        f"--kubeconfig={spec.kubeconfig('node-' + node.name)}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.address}",
        f"--root-dir={node.root_dir}",
    ]


def start_proxy(spec: ClusterSpec, node: SimNode, *, say: Progress) -> None:
    """`pykubelet proxy` of the node in its netns: Service rules (spec.proxy_mode) and node
    routes (spec.route_mode), with the cluster's kube-proxy identity."""
    proxyproc.start_proxy(
        spec,
        node.name,
        netns=node.netns,
        node_routes=spec.route_mode,
        mode=spec.proxy_mode,
        say=say,
    )


def pod_cidrs(spec: ClusterSpec) -> dict[str, list[str]]:
    """Node name -> spec.podCIDRs from the apiserver (admin)."""
    from cluster.up import api

    status, body = api(spec, "/api/v1/nodes")
    if status != 200:
        raise process.ComponentFailed(f"listing Nodes gave HTTP {status}: {body[:200]!r}")
    out: dict[str, list[str]] = {}
    for item in json.loads(body).get("items", []):
        spec_ = item.get("spec", {})
        out[item["metadata"]["name"]] = list(
            spec_.get("podCIDRs") or ([spec_["podCIDR"]] if spec_.get("podCIDR") else [])
        )
    return out


# ---- teardown ---------------------------------------------------------------------------------
KINDS_STOP_ORDER = ("pykubelet", "nsforward")


def _teardown_pods(spec: ClusterSpec, node: SimNode) -> None:
    crictl = spec.binaries.crictl
    if crictl is None or not crictl.exists() or daemon(spec, "containerd", node).pid() is None:
        return
    base = [
        str(crictl),
        "--runtime-endpoint",
        f"unix://{node.containerd_socket}",
        "--timeout",
        "30s",
    ]
    ids = subprocess.run([*base, "pods", "-q"], capture_output=True, text=True).stdout.split()
    for pod in ids:
        subprocess.run([*base, "stopp", pod], capture_output=True)
        subprocess.run([*base, "rmp", "-f", pod], capture_output=True)


def stop_node_processes(spec: ClusterSpec, node: SimNode, *, say: Progress) -> None:
    """Proxy, agent and forwarder, then the node's pods through its CRI, then its containerd
    and any shim left behind (the netns, and everything in it, goes in remove_segment)."""
    from cluster.up import agent_daemon

    if proxyproc.stop_proxy(spec, node.name):
        say(f"{node.name}: stopped pykubelet proxy")
    for kind in KINDS_STOP_ORDER:
        d = agent_daemon(spec, node.name) if kind == "pykubelet" else daemon(spec, kind, node)
        if process.stop(d):
            say(f"{node.name}: stopped {kind}")
    _teardown_pods(spec, node)
    if process.stop(daemon(spec, "containerd", node)):
        say(f"{node.name}: stopped containerd")
    if killed := process.kill_leftover_shims(node.containerd_socket):
        say(f"{node.name}: killed {killed} leftover shim/container processes")


def remove_segment(spec: ClusterSpec, *, say: Progress) -> None:
    """Delete every node netns, the switch netns and the root veth; nothing else."""
    names = [n.netns for n in sim_nodes(spec)]
    for what in segment_.remove(switch_netns(spec), names, root_link(spec)):
        say(f"deleted {what}")


def leftovers(spec: ClusterSpec) -> Iterator[str]:
    """What of this cluster's segment still exists (for tests and `down` reports)."""
    names = set(hostops.netns_names())
    for n in sim_nodes(spec):
        if n.netns in names:
            yield f"netns {n.netns}"
    if switch_netns(spec) in names:
        yield f"netns {switch_netns(spec)}"
    if Path(f"/sys/class/net/{root_link(spec)}").exists():
        yield f"link {root_link(spec)}"
