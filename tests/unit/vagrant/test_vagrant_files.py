"""vagrant/: the box builder's, host scripts' and Vagrantfile's static facts, checked without
root, libvirt or a VM (vagrant/smoke.sh is the end-to-end test: it boots real nodes).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

VAGRANT = Path(__file__).resolve().parents[3] / "vagrant"
FILES = VAGRANT / "box" / "files"


def scripts() -> list[Path]:
    return sorted([*VAGRANT.rglob("*.sh"), FILES / "usr/local/sbin/pykubelet-hostname"])


@pytest.mark.parametrize("script", scripts(), ids=lambda p: str(p.relative_to(VAGRANT)))
def test_scripts_parse(script: Path) -> None:
    shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, "")


def test_box_has_what_a_node_needs() -> None:
    listed = {
        line.split("#")[0].strip()
        for line in (VAGRANT / "box" / "packages.txt").read_text().splitlines()
    } - {""}
    needed = {"systemd", "systemd-sysv", "udev", "dbus", "iproute2", "iptables", "ipset"}
    needed |= {"ipvsadm", "conntrack", "kmod", "linux-image-cloud-amd64", "initramfs-tools"}
    needed |= {"openssh-server", "sudo", "ca-certificates", "containerd", "runc", "python3"}
    needed |= {"python3-venv", "socat", "ethtool", "procps", "util-linux", "curl", "less"}
    needed |= {"ifupdown"}
    assert needed <= listed


def test_containerd_cri_config_and_its_cgroup_driver() -> None:
    """SystemdCgroup says the driver (systemd since eb2570a: kubeadm's default cgroupDriver);
    the file's comment and the box's /etc/pykubelet-box (configure.sh) must name the same."""
    text = (FILES / "etc/containerd/config.toml").read_text()
    cfg = tomllib.loads(text)
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cfg["version"] == 2
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10"
    assert cri["cni"] == {"bin_dir": "/opt/cni/bin", "conf_dir": "/etc/cni/net.d"}
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    systemd = runc["options"]["SystemdCgroup"]
    assert isinstance(systemd, bool)
    driver = "systemd" if systemd else "cgroupfs"
    assert f"cgroup driver {driver}" in text
    assert (
        "SystemdCgroup *= *true' /etc/containerd/config.toml"
        in (VAGRANT / "box" / "configure.sh").read_text()
    )


def test_modules_and_sysctls() -> None:
    modules = (FILES / "etc/modules-load.d/pykubelet.conf").read_text().split("\n")
    for m in ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack", "br_netfilter"):
        assert m in modules
    assert {"overlay", "dummy"} <= set(modules)
    sysctl = (FILES / "etc/sysctl.d/90-pykubelet.conf").read_text()
    assert "net.ipv4.ip_forward = 1" in sysctl
    assert "net.bridge.bridge-nf-call-iptables = 1" in sysctl


def test_node_network_has_no_way_out() -> None:
    """eth0 takes only an address from DHCP (no gateway, no DNS); the default route is a dummy."""
    eth0 = (FILES / "etc/systemd/network/10-eth0.network").read_text()
    for key in ("UseGateway=no", "UseRoutes=no", "UseDNS=no"):
        assert key in eth0
    assert "Kind=dummy" in (FILES / "etc/systemd/network/20-pykdefault.netdev").read_text()


def test_node_macs_match_the_dhcp_hosts_of_the_host_network() -> None:
    """Vagrantfile: worker-i has MAC 52:54:00:c6:12:(10+i) and IP 198.18.1.(10+i); setup.sh's
    DHCP hands MAC 52:54:00:c6:12:NN the address 198.18.1.NN for NN in 11..70."""
    vf = (VAGRANT / "Vagrantfile").read_text()
    assert 'format("52:54:00:c6:12:%02x", 10 + i)' in vf
    assert 'ip = "#{SUBNET}.#{10 + i}"' in vf
    assert re.search(r"\(1\.\.60\)\.cover\?\(WORKERS\)", vf)
    setup = (VAGRANT / "host" / "setup.sh").read_text()
    assert "for n in $(seq 11 70)" in setup
    assert "<host mac='52:54:00:c6:12:%02x' ip='%s.%d'/>" in setup
    assert "<forward mode='open'/>" in setup


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed")
def test_vagrantfile_validates(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "VAGRANT_CWD": str(VAGRANT),
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "PYK_VAGRANT_CACHE": str(tmp_path / "cache"),
        "PYK_WORKERS": "3",
    }
    done = subprocess.run(
        ["vagrant", "validate"], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
