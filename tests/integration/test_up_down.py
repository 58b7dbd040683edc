"""As a user would: `pykubelet up`, `kubectl get ns`, `pykubelet down`, and nothing is left behind.
Runs its own cluster (separate dir, ports and bridge) next to the session one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kubelet.cluster import hostops, process
from kubelet.cluster.up import find_binaries

from .conftest import free_ports

CIDR = "10.89.0.0/16"
BRIDGE = "pykud0"


def _links() -> list[str]:
    """Links that could be this cluster's: its bridge, or links not enslaved to another bridge
    (other clusters may run on this machine meanwhile; their veths hang off their bridges)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if " master " not in line or f" master {BRIDGE} " in line:
            names.append(name)
    return sorted(names)


def _snapshot(directory: Path) -> dict[str, object]:
    """Everything on the host that this cluster could have made."""
    procs = sorted(
        " ".join(argv) for _, _, argv in process.processes() if str(directory) in " ".join(argv)
    )
    ipt = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    prefix = CIDR.split(".0.0/")[0] + "."
    return {
        "processes": procs,
        "mounts": hostops.mounts_under(directory) if directory.exists() else [],
        "netns": sorted(hostops.netns_names()),
        "links": _links(),
        "iptables": sorted(ln for ln in ipt.splitlines() if ln.startswith("-A") and prefix in ln),
    }


def test_up_kubectl_down_leaves_nothing(root_required: None, tmp_path: Path) -> None:
    directory = tmp_path / "usercluster"
    before = _snapshot(directory)
    api, etcd, peer, cm, sched, kubelet = free_ports(6)
    cli = [sys.executable, "-m", "kubelet.cli"]
    up = subprocess.run(
        [
            *cli,
            "up",
            "--no-build",
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
        assert ip.startswith("10.89."), ip
    finally:
        down = subprocess.run(
            [*cli, "down", "--dir", str(directory)], capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stderr
    assert not directory.exists()
    assert _snapshot(directory) == before
    again = subprocess.run([*cli, "down", "--dir", str(directory)], capture_output=True, text=True)
    assert again.returncode == 0
