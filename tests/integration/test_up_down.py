"""As a user would: `pykubelet up`, `kubectl get ns`, `pykubelet down`, and nothing is left behind.
Runs its own cluster (separate dir, ports and bridge) next to the session one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cluster import hostops, process
from cluster.spec import free_ports
from cluster.up import find_binaries, load_record
from net import names

_PID = os.getpid()
CIDR = f"10.{30 + _PID % 40}.0.0/16"
BRIDGE = f"pykud{_PID % 100000}"
"""Per-pid bridge and pod CIDR, so this test can run while other sessions run theirs."""
CGROUP_ROOT = f"/sys/fs/cgroup/memory/{BRIDGE}"
"""The agents' cgroupRoot is named after the bridge (up.cgroup_root)."""


def _own_links() -> list[str]:
    """This cluster's bridge and the links enslaved to it (its pods' host-side veths)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name == BRIDGE or f" master {BRIDGE} " in line:
            names.append(name)
    return sorted(names)


def _own_routes() -> list[str]:
    """Root netns routes into this cluster's pod CIDR (any table)."""
    out = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all", "root", CIDR],
        capture_output=True,
        text=True,
    ).stdout
    return sorted(out.splitlines())


def _own_iptables() -> list[str]:
    """Rules and chains of this cluster: its PYK-<bridge>- chains, or naming its pod CIDR."""
    ipt = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    prefix, chains = CIDR.split(".0.0/")[0] + ".", names.chain_prefix(BRIDGE)
    return sorted(
        ln
        for ln in ipt.splitlines()
        if ln.startswith(("-A", ":")) and (prefix in ln or chains in ln)
    )


def _pod_netns(directory: Path) -> list[str]:
    """The netns of this cluster's pod sandboxes, asked of its own containerd."""
    spec = load_record(directory)
    crictl = find_binaries(build=False).crictl
    assert spec is not None and crictl is not None
    base = [str(crictl), "--runtime-endpoint", f"unix://{spec.containerd_socket}"]
    ids = subprocess.run([*base, "pods", "-q"], capture_output=True, text=True).stdout.split()
    paths = []
    for sandbox in ids:
        raw = subprocess.run([*base, "inspectp", sandbox], capture_output=True, text=True).stdout
        for n in json.loads(raw)["info"]["runtimeSpec"]["linux"]["namespaces"]:
            if n.get("type") == "network" and n.get("path"):
                paths.append(str(n["path"]))
    return sorted(paths)


def _snapshot(directory: Path, pod_netns: list[str]) -> dict[str, object]:
    """Everything on the host that this cluster could have made (and nothing of other
    sessions, which may create and remove their own netns, links and rules meanwhile)."""
    procs = sorted(
        " ".join(argv) for _, _, argv in process.processes() if str(directory) in " ".join(argv)
    )
    return {
        "processes": procs,
        "mounts": hostops.mounts_under(directory) if directory.exists() else [],
        "netns": [p for p in pod_netns if Path(p).exists()],
        "links": _own_links(),
        "routes": _own_routes(),
        "iptables": _own_iptables(),
        "cgroup": Path(CGROUP_ROOT).exists(),
    }


def test_up_kubectl_down_leaves_nothing(root_required: None, tmp_path: Path) -> None:
    directory = tmp_path / "usercluster"
    before = _snapshot(directory, [])
    pod_netns: list[str] = []
    api, etcd, peer, cm, sched, kubelet = free_ports(6)
    cli = [sys.executable, "-m", "pykubelet.cli"]
    up = subprocess.run(
        [
            *cli,
            "up",
            "--no-build",
            "--no-addons",  # one proxy per root netns: test_cluster_services_dns runs that one
            "--dir",
            str(directory),
            "--bridge",
            BRIDGE,
            "--cluster-cidr",
            CIDR,
            "--apiserver-port",
            str(api),
            "--etcd-client-port",
            str(etcd),
            "--etcd-peer-port",
            str(peer),
            "--controller-manager-port",
            str(cm),
            "--scheduler-port",
            str(sched),
            "--kubelet-port",
            str(kubelet),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stderr
        export = [ln for ln in up.stdout.splitlines() if ln.startswith("export KUBECONFIG=")]
        assert export, up.stdout
        kubeconfig = export[0].split("=", 1)[1]
        assert "[pykubelet up] kube-apiserver ready" in up.stderr
        kubectl = find_binaries(build=False).k8s("kubectl")
        got = subprocess.run(
            [str(kubectl), "get", "ns", "-o", "name"],
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": kubeconfig},
            timeout=60,
        )
        assert got.returncode == 0, got.stderr
        assert "namespace/default" in got.stdout.split()
        assert "namespace/kube-system" in got.stdout.split()
        env = {**os.environ, "KUBECONFIG": kubeconfig}
        run = [
            str(kubectl),
            "run",
            "bb",
            "--image=docker.io/library/busybox:1.35",
            "--image-pull-policy=IfNotPresent",
            "--",
            "sleep",
            "3600",
        ]
        for _ in range(50):  # the default ServiceAccount appears a moment after up
            made = subprocess.run(run, capture_output=True, text=True, env=env, timeout=30)
            if made.returncode == 0 or "serviceaccount" not in made.stderr:
                break
            time.sleep(0.2)
        assert made.returncode == 0, made.stderr
        ready = subprocess.run(
            [str(kubectl), "wait", "--for=condition=Ready", "pod/bb", "--timeout=60s"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert ready.returncode == 0, ready.stderr
        ip = subprocess.run(
            [str(kubectl), "get", "pod", "bb", "-o", "jsonpath={.status.podIP}"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        assert ip.startswith(CIDR.split(".0.0/")[0] + "."), ip
        # What the up made is seen by the snapshot, so its comparison after down means something.
        pod_netns = _pod_netns(directory)
        during = _snapshot(directory, pod_netns)
        assert pod_netns and during["netns"] == pod_netns, during
        links = _own_links()
        assert BRIDGE in links and len(links) >= 2, links  # the bridge and bb's veth
        assert during["routes"] and during["iptables"] and during["processes"], during
        assert during["cgroup"], CGROUP_ROOT
    finally:
        down = subprocess.run(
            [*cli, "down", "--dir", str(directory)], capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stderr
    assert not directory.exists()
    assert _snapshot(directory, pod_netns) == before
    again = subprocess.run([*cli, "down", "--dir", str(directory)], capture_output=True, text=True)
    assert again.returncode == 0
