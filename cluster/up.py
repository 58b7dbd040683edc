"""`pykubelet up` / `down`: a real local cluster (etcd, apiserver, controllers, scheduler,
containerd).
Orchestrates the other cluster modules in order with visible progress; owns no format of its own
beyond the cluster.json record that lets `down` find everything `up` made.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cluster import (
    addons,
    containerd,
    dns,
    hostops,
    images,
    joining,
    kubeconfig,
    nodes,
    pki,
    process,
)
from cluster.http import request
from cluster.spec import (
    DEFAULT_CACHE,
    Binaries,
    ClusterSpec,
    Ports,
    apiserver_command,
    containerd_command,
    controller_manager_command,
    etcd_command,
    scheduler_command,
    scheduler_config,
)
from kubelet.cgroups.manager import remove_root as remove_cgroup_root
from net import install
from net import iptables as net_iptables

log = logging.getLogger(__name__)
BUILD_SCRIPT = Path(__file__).parent / "gobuild" / "build.sh"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd")
"""In start order; `down` stops node agents first, then these in reverse."""
Progress = Callable[[str], None]


def _say(msg: str) -> None:
    print(f"[pykubelet up] {msg}", file=sys.stderr, flush=True)


def find_binaries(
    cache: Path = DEFAULT_CACHE, *, build: bool = True, say: Progress = _say
) -> Binaries:
    """The Go-built binaries from the version-keyed cache, building them first when missing."""
    if build:
        say(
            "ensuring Go-built binaries (kube-apiserver, controller-manager, scheduler, kubectl, "
            "etcd, crictl, coredns); a cold build takes tens of minutes"
        )
        r = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "server", "etcd", "crictl", "coredns"],
            env={**_env(), "PYKUBELET_CACHE": str(cache)},
        )
        if r.returncode != 0:
            say("warning: a Go build failed; using what exists (see the output above)")
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "paths"],
        capture_output=True,
        text=True,
        env={**_env(), "PYKUBELET_CACHE": str(cache)},
        check=True,
    ).stdout
    paths = dict(item.split("=", 1) for item in out.split())
    k8s = Path(paths["K8S_BIN"])
    missing = [
        n
        for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        if not (k8s / n).exists()
    ]
    if missing:
        raise process.ComponentFailed(
            f"missing Kubernetes binaries {missing} in {k8s}; run: bash {BUILD_SCRIPT} server"
        )
    etcd = Path(paths["ETCD_BIN"]) / "etcd"
    crictl = Path(paths["CRICTL_BIN"]) / "crictl"
    return Binaries(kubernetes=k8s, etcd=etcd, crictl=crictl if crictl.exists() else None)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def make_spec(
    directory: Path,
    binaries: Binaries,
    *,
    ports: Ports | None = None,
    node_names: tuple[str, ...] = (),
    bridge: str = "pykbr0",
    cluster_cidr: str = ClusterSpec.cluster_cidr,
    node_subnet: str = "",
    netns_prefix: str = ClusterSpec.netns_prefix,
    route_mode: str = ClusterSpec.route_mode,
    proxy_mode: str = ClusterSpec.proxy_mode,
    advertise_address: str = "",
    joinable: bool = False,
) -> ClusterSpec:
    fallback = not binaries.etcd.exists()
    if fallback:
        log.warning("etcd 3.6 not built; falling back to Debian's etcd-server 3.4 (/usr/bin/etcd)")
        binaries = dataclasses.replace(binaries, etcd=Path("/usr/bin/etcd"))
    return ClusterSpec(
        directory=directory,
        binaries=binaries,
        ports=ports or Ports(),
        node_names=node_names,
        etcd_is_fallback=fallback,
        bridge=bridge,
        cluster_cidr=cluster_cidr,
        node_subnet=node_subnet,
        netns_prefix=netns_prefix,
        route_mode=route_mode,
        proxy_mode=proxy_mode,
        advertise_address=advertise_address,
        joinable=joinable,
    )


# ---- record ----------------------------------------------------------------------------------
def _record_path(directory: Path) -> Path:
    return directory / "cluster.json"


def save_record(spec: ClusterSpec) -> None:
    data = dataclasses.asdict(spec)
    spec.directory.mkdir(parents=True, exist_ok=True)
    _record_path(spec.directory).write_text(json.dumps(data, default=str, indent=2))


def load_record(directory: Path) -> ClusterSpec | None:
    try:
        data = json.loads(_record_path(directory).read_text())
    except (OSError, ValueError):
        return None
    b = data["binaries"]
    binaries = Binaries(
        kubernetes=Path(b["kubernetes"]),
        etcd=Path(b["etcd"]),
        crictl=Path(b["crictl"]) if b.get("crictl") else None,
    )
    return ClusterSpec(
        directory=Path(data["directory"]),
        binaries=binaries,
        ports=Ports(**data["ports"]),
        address=data["address"],
        service_cidr=data["service_cidr"],
        cluster_cidr=data["cluster_cidr"],
        node_cidr_mask=data["node_cidr_mask"],
        bridge=data["bridge"],
        node_names=tuple(data["node_names"]),
        etcd_is_fallback=data["etcd_is_fallback"],
        node_monitor_grace_period=data["node_monitor_grace_period"],
        node_subnet=data.get("node_subnet", ""),
        netns_prefix=data.get("netns_prefix", ClusterSpec.netns_prefix),
        route_mode=data.get("route_mode", ClusterSpec.route_mode),
        proxy_mode=data.get("proxy_mode", ClusterSpec.proxy_mode),
        advertise_address=data.get("advertise_address", ""),
        joinable=data.get("joinable", False),
    )


# ---- pieces ----------------------------------------------------------------------------------
def daemon(spec: ClusterSpec, name: str) -> process.Daemon:
    return process.Daemon(name=name, run_dir=spec.run, log_dir=spec.logs)


def write_credentials(spec: ClusterSpec) -> None:
    plan = pki.PKIPlan(
        server_dns=(
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ),
        server_ips=(spec.address, spec.first_service_ip)
        + ((spec.advertise_address,) if spec.advertise_address else ()),
        clients=pki.CONTROL_PLANE_CLIENTS + tuple(pki.node_identity(n) for n in spec.node_names),
    )
    pki.write_pki(spec.pki, plan)
    stems = [c.file_stem for c in plan.clients]
    for stem in stems:
        text = kubeconfig.render(
            server=spec.server,
            ca_file=spec.pki / "server-ca.crt",
            cert_file=spec.pki / f"{stem}.crt",
            key_file=spec.pki / f"{stem}.key",
            user=stem,
        )
        kubeconfig.write(spec.kubeconfig(stem), text)


def api(
    spec: ClusterSpec, path: str, *, method: str = "GET", body: object = None, who: str = "admin"
) -> tuple[int, bytes]:
    r = request(
        spec.server + path,
        method=method,
        body=body,
        ca_file=spec.pki / "server-ca.crt",
        cert=(spec.pki / f"{who}.crt", spec.pki / f"{who}.key"),
    )
    return r.status, r.body


def _healthz(url: str) -> Callable[[], bool]:
    return lambda: request(url, timeout=2).status == 200


def _bootstrap_rbac(spec: ClusterSpec) -> None:
    """The apiserver's kubelet client (user kube-apiserver) may call nodes' :10250 API; kubeadm's
    RBAC for bootstrap tokens and node client CSRs (auto-approved, renewals too)."""
    objects = [joining.apiserver_kubelet_client_binding(), *joining.rbac_objects()]
    try:
        joining.apply(spec, objects, api)
    except RuntimeError as e:
        raise process.ComponentFailed(f"kube-apiserver: {e}") from e


def _ctr_ready(spec: ClusterSpec) -> Callable[[], bool]:
    def ready() -> bool:
        r = subprocess.run(
            ["ctr", "--address", str(spec.containerd_socket), "version"],
            capture_output=True,
            timeout=5,
        )
        return r.returncode == 0

    return ready


def provisional_pod_cidr(spec: ClusterSpec) -> str:
    """The first node-sized block of the cluster CIDR (what node IPAM gives the first node)."""
    base = spec.cluster_cidr.split("/")[0]
    return f"{base}/{spec.node_cidr_mask}"


PROVISIONAL_CONFLIST = "10-pykubelet-provisional.conflist"


def own_cni(env: dict[str, str] | None = None) -> bool:
    """pykubelet's own CNI plugin (net/), unless PYKUBELET_CNI=provisional asks for the Debian
    bridge + host-local + portmap conflist of the foundation issue (the way back)."""
    return (env if env is not None else _env()).get("PYKUBELET_CNI", "") != "provisional"


def cni_bin_dir(spec: ClusterSpec) -> Path:
    """containerd's CNI bin dir: ours (holding only pykubelet-cni) or Debian's."""
    return spec.directory / "cni" / "bin" if own_cni() else spec.cni_bin_dir


def _write_cni_files(spec: ClusterSpec) -> None:
    """Our plugin's launcher (the node agent writes the conflist once it has a podCIDR), or
    the provisional conflist; never both."""
    provisional = spec.cni_conf_dir / PROVISIONAL_CONFLIST
    if own_cni():
        install.install_plugin(cni_bin_dir(spec))
        provisional.unlink(missing_ok=True)
        return
    (spec.cni_conf_dir / install.CONFLIST_NAME).unlink(missing_ok=True)
    provisional.write_text(
        containerd.provisional_cni_conflist(
            pod_cidr=provisional_pod_cidr(spec),
            bridge=spec.bridge,
            ipam_data_dir=spec.directory / "cni" / "ipam",
        )
    )


def agent_network_env(spec: ClusterSpec) -> dict[str, str]:
    """What the node agent needs to run pykubelet's plugin (see net/settings.py)."""
    if not own_cni():
        return {}
    return {
        "PYKUBELET_CNI_CONF_DIR": str(spec.cni_conf_dir),
        "PYKUBELET_CNI_BIN_DIR": str(cni_bin_dir(spec)),
        "PYKUBELET_CNI_BRIDGE": spec.bridge,
        "PYKUBELET_CLUSTER_CIDR": spec.cluster_cidr,
    }


def start_containerd(spec: ClusterSpec, *, say: Progress = _say) -> None:
    for path in (spec.containerd_root, spec.containerd_state, spec.cni_conf_dir, spec.run):
        path.mkdir(parents=True, exist_ok=True)
    spec.containerd_config.write_text(
        containerd.render_config(
            root=spec.containerd_root,
            state=spec.containerd_state,
            socket=spec.containerd_socket,
            cni_bin_dir=cni_bin_dir(spec),
            cni_conf_dir=spec.cni_conf_dir,
            sandbox_image=images.PAUSE_IMAGE,
        )
    )
    _write_cni_files(spec)
    d = daemon(spec, "containerd")
    process.start(d, containerd_command(spec))
    waited = process.wait_ready(d, _ctr_ready(spec), timeout=30)
    say(f"containerd ready ({waited:.1f}s), socket {spec.containerd_socket}")
    archives = images.build_images(DEFAULT_CACHE / "images")
    images.import_images(address=spec.containerd_socket, archives=archives)
    say(f"images imported: {', '.join(a.name for a in archives)}")


def cgroup_root(spec: ClusterSpec, node: str = "") -> str:
    """The agent's cgroupRoot: named after the cluster's bridge (unique per test session), so
    clusters side by side never share pod cgroups; a simulated node's is below it in its own
    directory. `down` removes the whole tree."""
    return f"/{spec.bridge}/{node}" if node else f"/{spec.bridge}"


def agent_config(
    spec: ClusterSpec,
    static_pod_path: Path | None = None,
    extra: str = "",
    *,
    runtime_socket: Path | None = None,
    pod_logs: Path | None = None,
) -> str:
    """The KubeletConfiguration `up` gives its node agent (a file, as a systemd unit would use):
    callers of :10250 authenticate with certificates of the cluster's client CA or with tokens
    (TokenReview), and are authorized by the apiserver (SubjectAccessReview). Simulated nodes
    pass their own runtime socket and pod log directory."""
    socket = runtime_socket or spec.containerd_socket
    logs = pod_logs or spec.directory / "pod-logs"
    lines = [
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
        f"containerRuntimeEndpoint: unix://{socket}",
        "cgroupDriver: cgroupfs",
        f"cgroupRoot: {cgroup_root(spec, logs.parent.name if pod_logs else '')}",
        "failCgroupV1: false",
        # no registry here: an image collected by the periodic GC could never come back
        "imageGCHighThresholdPercent: 100",
        # 127.0.0.1:10248 may belong to another cluster on this machine (or a real kubelet)
        "healthzPort: 0",
        *dns.agent_config_lines(spec.service_cidr),
        f"port: {spec.ports.kubelet}",
        f"podLogsDir: {json.dumps(str(logs))}",
        "authentication:",
        "  anonymous: {enabled: false}",
        "  webhook: {enabled: true}",
        f"  x509: {{clientCAFile: {json.dumps(str(spec.pki / 'client-ca.crt'))}}}",
        "authorization: {mode: Webhook}",
    ]
    if static_pod_path:
        lines.append(f"staticPodPath: {json.dumps(str(static_pod_path))}")
    if extra:
        lines.append(extra.strip("\n"))  # more top-level YAML lines (tests: small log limits)
    return "\n".join(lines) + "\n"


def agent_daemon(spec: ClusterSpec, node: str) -> process.Daemon:
    return daemon(spec, f"pykubelet-{node}")


def node_ready(spec: ClusterSpec, node: str) -> bool:
    status, body = api(spec, f"/api/v1/nodes/{node}")
    if status != 200:
        return False
    conds = json.loads(body).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def start_node(
    spec: ClusterSpec,
    node: str,
    *,
    say: Progress = _say,
    wait: bool = True,
    static_pod_path: Path | None = None,
    extra: str = "",
) -> None:
    """Run `pykubelet run` as the cluster's node, as its own process with files on disk;
    `extra` is appended to its KubeletConfiguration (top-level YAML lines)."""
    root = spec.directory / "nodes" / node
    root.mkdir(parents=True, exist_ok=True)
    config = root / "kubelet-config.yaml"
    config.write_text(agent_config(spec, static_pod_path, extra))
    d = agent_daemon(spec, node)
    process.start(
        d,
        [
            sys.executable,
            "-m",
            "pykubelet.cli",
            "run",
            f"--config={config}",
            f"--kubeconfig={spec.kubeconfig('node-' + node)}",
            f"--hostname-override={node}",
            f"--root-dir={root / 'root'}",
        ],
        env=agent_network_env(spec),
    )
    if wait:
        waited = process.wait_ready(d, lambda: node_ready(spec, node), timeout=60)
        say(f"node {node} Ready ({waited:.1f}s after the agent started)")


def up(
    spec: ClusterSpec,
    *,
    say: Progress = _say,
    with_containerd: bool = True,
    with_nodes: bool = True,
    with_addons: bool = True,
) -> None:
    """Bring the cluster up (idempotent: running components are kept); with the nodes, the
    add-ons too unless told not to (a host node's Service proxy, cluster DNS)."""
    t0 = time.monotonic()
    save_record(spec)
    if spec.etcd_is_fallback:
        say("WARNING: using Debian's etcd 3.4 as a fallback (etcd 3.6 was not built)")
    write_credentials(spec)
    (spec.directory / "scheduler.yaml").write_text(scheduler_config(spec))
    a = spec.address
    steps: list[tuple[str, list[str], Callable[[], bool]]] = [
        ("etcd", etcd_command(spec), _healthz(f"http://{a}:{spec.ports.etcd_client}/health")),
        ("kube-apiserver", apiserver_command(spec), lambda: api(spec, "/readyz")[0] == 200),
    ]
    for name, cmd, ready in steps:
        d = daemon(spec, name)
        process.start(d, cmd)
        say(f"{name} ready ({process.wait_ready(d, ready, timeout=90):.1f}s)")
    _bootstrap_rbac(spec)
    for name, cmd, url in (
        (
            "kube-controller-manager",
            controller_manager_command(spec),
            f"https://{a}:{spec.ports.controller_manager}/healthz",
        ),
        ("kube-scheduler", scheduler_command(spec), f"https://{a}:{spec.ports.scheduler}/healthz"),
    ):
        d = daemon(spec, name)
        process.start(d, cmd)
        say(f"{name} ready ({process.wait_ready(d, _healthz(url), timeout=60):.1f}s)")
    if spec.joinable:
        say(
            f"joinable: {joining.make_joinable(spec, api, now=datetime.datetime.now(datetime.UTC))}"
        )
    if spec.node_subnet:
        if with_nodes:
            start_sim_nodes(spec, say=say)
    elif with_containerd:
        start_containerd(spec, say=say)
        if with_nodes:
            for node in spec.node_names:
                start_node(spec, node, say=say)
    if with_nodes and with_addons:
        addons.start(spec, say=say)
    say(f"cluster up in {time.monotonic() - t0:.1f}s; logs in {spec.logs}")


def start_sim_node(spec: ClusterSpec, node: nodes.SimNode, *, say: Progress = _say) -> None:
    """One simulated node's containerd, apiserver forwarder and node agent (not waited for)."""
    nodes.start_containerd(spec, node, say=say)
    nodes.start_forwarder(spec, node)
    node.directory.mkdir(parents=True, exist_ok=True)
    config = node.directory / "kubelet-config.yaml"
    config.write_text(
        agent_config(
            spec, runtime_socket=node.containerd_socket, pod_logs=node.directory / "pod-logs"
        )
    )
    process.start(
        agent_daemon(spec, node.name),
        nodes.agent_command(spec, node, config),
        env=nodes.agent_env(spec, node),
        netns=node.netns,
    )


def _node_ready(spec: ClusterSpec, node: str) -> Callable[[], bool]:
    return lambda: node_ready(spec, node)


def start_sim_nodes(spec: ClusterSpec, *, say: Progress = _say) -> None:
    """`up --nodes N`: the segment, then every node, then routes once nodes have pod CIDRs."""
    sims = nodes.sim_nodes(spec)
    nodes.build_segment(spec, say=say)
    for node in sims:
        start_sim_node(spec, node, say=say)
    for node in sims:
        d = agent_daemon(spec, node.name)
        waited = process.wait_ready(d, _node_ready(spec, node.name), timeout=90)
        say(f"node {node.name} Ready at {node.address} ({waited:.1f}s)")
    nodes.route_pod_cidrs_from_root(spec, nodes.pod_cidrs(spec))
    for node in sims:
        nodes.start_proxy(spec, node, say=say)
    say(f"node routes: {spec.route_mode} between {len(sims)} nodes; proxy mode {spec.proxy_mode}")


def _teardown_pods(spec: ClusterSpec) -> list[str]:
    """Stop and remove every pod sandbox through CRI; returns the netns paths they had."""
    crictl = spec.binaries.crictl
    if crictl is None or not crictl.exists() or daemon(spec, "containerd").pid() is None:
        return []
    base = [
        str(crictl),
        "--runtime-endpoint",
        f"unix://{spec.containerd_socket}",
        "--timeout",
        "30s",
    ]
    ids = subprocess.run([*base, "pods", "-q"], capture_output=True, text=True).stdout.split()
    netns: list[str] = []
    for pod in ids:
        out = subprocess.run([*base, "inspectp", pod], capture_output=True, text=True).stdout
        try:
            for ns in json.loads(out)["info"]["runtimeSpec"]["linux"]["namespaces"]:
                if ns.get("type") == "network" and ns.get("path"):
                    netns.append(ns["path"])
        except (ValueError, KeyError, TypeError):
            pass
        subprocess.run([*base, "stopp", pod], capture_output=True)
        subprocess.run([*base, "rmp", "-f", pod], capture_output=True)
    return netns


def _stop_root_proxies(spec: ClusterSpec, say: Progress) -> None:
    """Proxies that ran in this netns: stop them and remove their KUBE-* chains (only if one
    ran here: other sessions' proxies own the chains of their own netns)."""
    from cluster import proxyproc

    for node in spec.node_names:
        if proxyproc.stop_proxy(spec, node):
            say(f"stopped pykubelet proxy {node}")
    try:
        if report := proxyproc.cleanup_root_netns(spec):
            say(f"pykubelet proxy --cleanup: {report}")
    except process.ComponentFailed as exc:
        say(f"warning: {exc}")


def down(directory: Path, *, say: Progress = _say) -> None:
    """Stop everything `up` started and remove what it made; safe to run twice."""
    spec = load_record(directory)
    if spec is None:
        say(f"no cluster recorded in {directory}; nothing to do")
        return
    sims = nodes.sim_nodes(spec)
    for sim in sims:
        nodes.stop_node_processes(spec, sim, say=say)
    for node in spec.node_names:
        if process.stop(agent_daemon(spec, node)):
            say(f"stopped node agent {node}")
    addons.stop(spec, say=say)
    _stop_root_proxies(spec, say)
    netns_paths = _teardown_pods(spec)
    for name in reversed(COMPONENTS):
        if process.stop(daemon(spec, name)):
            say(f"stopped {name}")
    if killed := process.kill_leftover_shims(spec.containerd_socket):
        say(f"killed {killed} leftover shim/container processes")
    for path in netns_paths:
        if Path(path).exists():
            hostops.unmount_all([path])
            Path(path).unlink(missing_ok=True)
    unmounted = hostops.unmount_all(hostops.mounts_under(spec.directory))
    if unmounted:
        say(f"unmounted {len(unmounted)} mounts under {spec.directory}")
    if sims:
        nodes.remove_segment(spec, say=say)  # node bridges and rules live in the node netns
    else:
        if hostops.delete_link(spec.bridge):
            say(f"deleted bridge {spec.bridge}")
        if net_iptables.remove_network(spec.bridge):
            say(f"removed iptables chains of {spec.bridge}")
    hostops.release_netns_dir()
    if remove_cgroup_root(cgroup_root(spec)):
        say(f"removed cgroup {cgroup_root(spec)}")
    shutil.rmtree(spec.directory, ignore_errors=True)
    say("cluster down")
