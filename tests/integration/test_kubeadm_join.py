"""The real, unmodified `kubeadm join` against a joinable harness cluster (`up --joinable`), with
pykubelet as the kubelet: discovery (cluster-info read anonymously, its JWS signature, the CA pin),
kubeadm reading kubeadm-config and kubelet-config under kubeadm's RBAC, bootstrap-kubelet.conf,
pykubelet's TLS bootstrap with the token, the /etc/kubernetes/kubelet.conf kubeadm waits for, and
healthz. kubeadm writes to /etc/kubernetes and /var/lib/kubelet: here both are overlays in a
private mount namespace (upper dirs on its own tmpfs), so the host keeps nothing of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cluster import joining, process
from cluster import up as cluster
from cluster.spec import ClusterSpec, Ports, free_ports

from .podutil import Json, api_json, wait_for

NODE = "kubeadm-node"
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
HOST_PATHS = tuple(
    Path(p)
    for p in (
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
    )
)
SCRATCH_SCRIPT = """
set -e
mount -t tmpfs -o mode=0700 pykubelet-kubeadm "$1"
for d in /etc /var/lib; do
  mkdir -p "$1/$d/up" "$1/$d/work"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$1/$d/up,workdir=$1/$d/work" "$d"
done
touch "$1/ready"
exec sleep infinity
"""


@dataclass(frozen=True)
class Joinable:
    spec: ClusterSpec
    """The joinable cluster: its own control plane and containerd, no node yet."""
    kubeadm: Path
    healthz_port: int


@pytest.fixture(scope="module")
def joinable(root_required: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Joinable]:
    kubeadm = cluster.find_binaries(build=False).k8s("kubeadm")
    if not kubeadm.exists():
        pytest.skip(f"kubeadm is not built ({kubeadm}): bash cluster/gobuild/build.sh kubeadm")
    directory = Path(tmp_path_factory.mktemp("joinable"))
    ports = Ports(*free_ports(6))
    spec = cluster.make_spec(
        directory,
        cluster.find_binaries(build=False),
        ports=ports,
        bridge=f"pykj{os.getpid() % 100000}",
        cluster_cidr=f"10.{100 + (os.getpid() + 75) % 150}.0.0/16",
        joinable=True,
    )
    healthz = free_ports(1)[0]
    try:
        cluster.up(spec, with_nodes=False)
        # kubeadm waits for healthz where the cluster's KubeletConfiguration says: a free port
        kubelet_config = yaml.safe_load(joining.kubelet_configuration(spec))
        kubelet_config["healthzPort"] = healthz
        config_map = joining.signed(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
                "data": {"kubelet": yaml.safe_dump(kubelet_config)},
            }
        )
        joining.apply(spec, [config_map], cluster.api)
        yield Joinable(spec, kubeadm, healthz)
    finally:
        cluster.down(directory)


class MountNamespace:
    """A process holding a private mount namespace whose /etc and /var/lib are overlays."""

    def __init__(self, scratch: Path) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        self.scratch = scratch
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                SCRATCH_SCRIPT,
                "sh",
                str(scratch),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: self.path(scratch / "ready").exists() or self.proc.poll() is not None,
            10,
            "mounts",
        )
        if self.proc.poll() is not None:
            out = self.proc.stdout.read().decode() if self.proc.stdout else ""
            raise AssertionError(f"the mount namespace did not come up: {out}")

    def path(self, inside: Path | str) -> Path:
        """A path as processes in the namespace see it, readable from here."""
        return Path(f"/proc/{self.proc.pid}/root") / str(inside).lstrip("/")

    def enter(self, command: list[str]) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--", *command]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def _agent(j: Joinable, ns: MountNamespace) -> int:
    """pykubelet as the joining node's kubelet: kubeadm's bootstrap kubeconfig and kubelet.conf
    paths; the harness's KubeletConfiguration for this host (kubeadm's config.yaml is for the
    VMs: systemd cgroups), with the healthz port kubeadm waits on."""
    root = j.spec.directory / "nodes" / NODE
    root.mkdir(parents=True, exist_ok=True)
    config = root / "kubelet-config.yaml"
    extra = f"healthzPort: {j.healthz_port}\nrotateCertificates: true"
    config.write_text(cluster.agent_config(j.spec, extra=extra))
    return process.start(
        cluster.agent_daemon(j.spec, NODE),
        ns.enter(
            [
                sys.executable,
                "-m",
                "pykubelet.cli",
                "run",
                f"--config={config}",
                "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
                f"--hostname-override={NODE}",
                f"--root-dir={root / 'root'}",
            ]
        ),
    )


def _join_command(j: Joinable) -> list[str]:
    words = joining.join_command_path(j.spec).read_text().split()
    assert words[:2] == ["kubeadm", "join"], words
    return [
        str(j.kubeadm),
        *words[1:],
        f"--node-name={NODE}",
        f"--cri-socket=unix://{j.spec.containerd_socket}",
        "--ignore-preflight-errors=all",  # this host is no kubeadm node (ports, swap, systemd)
        "-v=1",
    ]


def test_kubeadm_join_with_pykubelet_as_the_kubelet(joinable: Joinable, tmp_path: Path) -> None:
    j = joinable
    host_before = {p: p.exists() for p in HOST_PATHS}
    ns = MountNamespace(tmp_path / "scratch")
    join: subprocess.Popen[bytes] | None = None
    log = tmp_path / "kubeadm-join.log"
    try:
        with open(log, "wb") as out:
            join = subprocess.Popen(
                ns.enter(_join_command(j)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        bootstrap = ns.path("/etc/kubernetes/bootstrap-kubelet.conf")
        flags = ns.path("/var/lib/kubelet/kubeadm-flags.env")  # kubelet-start's last file
        wait_for(lambda: flags.exists() or join.poll() is not None, 120, "kubeadm's kubelet files")
        assert join.poll() is None, log.read_text()
        doc = yaml.safe_load(bootstrap.read_text())
        assert doc["clusters"][0]["cluster"]["server"] == f"https://{joining.join_endpoint(j.spec)}"
        assert ns.path("/etc/kubernetes/pki/ca.crt").read_bytes() == joining.ca_bundle(j.spec)
        written = yaml.safe_load(ns.path("/var/lib/kubelet/config.yaml").read_text())
        assert (
            written["kind"] == "KubeletConfiguration" and written["healthzPort"] == j.healthz_port
        )
        _agent(j, ns)
        code = join.wait(180)
        text = log.read_text()
        assert code == 0, text
        assert "This node has joined the cluster" in text
        kubelet_conf = yaml.safe_load(ns.path("/etc/kubernetes/kubelet.conf").read_text())
        pem = kubelet_conf["users"][0]["user"]["client-certificate"]
        assert pem.endswith("/kubelet-client-current.pem")
        assert not ns.path("/etc/kubernetes/bootstrap-kubelet.conf").exists()  # kubeadm removed it
        csrs: list[Json] = api_json(j.spec, CSRS)["items"]
        (csr,) = [c for c in csrs if c["spec"]["username"].startswith("system:bootstrap:")]
        assert csr["metadata"]["name"].startswith("node-csr-")
        assert any(c["type"] == "Approved" for c in csr["status"]["conditions"])
        wait_for(lambda: cluster.api(j.spec, f"/api/v1/nodes/{NODE}")[0] == 200, 60, "the Node")
    finally:
        if join is not None and join.poll() is None:
            join.kill()
            join.wait(10)
        process.stop(cluster.agent_daemon(j.spec, NODE))
        ns.close()
    assert {p: p.exists() for p in HOST_PATHS} == host_before  # nothing written on the host
