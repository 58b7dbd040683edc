"""vagrant/systemd/: the kubelet and kube-proxy units are clean under `systemd-analyze verify`
(in a throwaway root with stub executables, no systemd as PID 1 needed) and say what kubeadm's
packages and our sd_notify support need: Type=notify, the watchdog, the kubeadm drop-in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "vagrant" / "systemd"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
PREFIXES = "-@:+!"


def directives(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every directive, in order (keys may repeat)."""
    out, section = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(path: Path, section: str, key: str) -> list[str]:
    return [v for s, k, v in directives(path) if (s, k) == (section, key)]


def unit_files() -> list[Path]:
    return sorted([*UNITS.glob("*.service"), *UNITS.glob("*.d/*.conf")])


def test_kubelet_unit_is_a_notify_service_with_the_watchdog() -> None:
    unit = UNITS / "kubelet.service"
    assert values(unit, "Service", "Type") == ["notify"]
    assert values(unit, "Service", "ExecStart") == ["/usr/bin/kubelet"]
    assert values(unit, "Service", "Restart") == ["always"]
    assert values(unit, "Service", "WatchdogSec") == ["30s"]
    assert values(unit, "Service", "RestartSec") == ["10"]
    assert values(unit, "Install", "WantedBy") == ["multi-user.target"]


def test_kubeadm_drop_in_resets_exec_start_and_reads_kubeadm_flags() -> None:
    conf = UNITS / "kubelet.service.d" / "10-kubeadm.conf"
    env = values(conf, "Service", "Environment")
    assert (
        '"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf'
        ' --kubeconfig=/etc/kubernetes/kubelet.conf"' in env
    )
    assert '"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"' in env
    assert values(conf, "Service", "EnvironmentFile") == [
        "-/var/lib/kubelet/kubeadm-flags.env",
        "-/etc/default/kubelet",
    ]
    assert values(conf, "Service", "ExecStart") == [
        "",
        "/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS "
        "$KUBELET_EXTRA_ARGS",
    ]


def test_kube_proxy_unit() -> None:
    unit = UNITS / "kube-proxy.service"
    assert values(unit, "Service", "Type") == ["notify"]
    assert values(unit, "Service", "ExecStart") == [
        "/usr/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=%H"
        " $KUBE_PROXY_EXTRA_ARGS"
    ]
    assert values(unit, "Service", "EnvironmentFile") == ["-/etc/default/kube-proxy"]
    assert values(unit, "Service", "Restart") == ["always"]


def test_the_readme_says_where_each_file_goes() -> None:
    readme = (UNITS / "README.md").read_text()
    for path in unit_files():
        assert str(path.relative_to(UNITS)) in readme


def _throwaway_root(root: Path) -> None:
    """systemd's own units (targets the ours depend on), ours in /etc/systemd/system, and an
    executable stub at every ExecStart path."""
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    for path in unit_files():
        dest = root / "etc/systemd/system" / path.relative_to(UNITS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
        for command in values(path, "Service", "ExecStart"):
            if command:
                stub = root / command.split()[0].lstrip(PREFIXES).lstrip("/")
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\n")
                stub.chmod(0o755)


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze (Debian package systemd) is not installed",
)
def test_units_are_clean_under_systemd_analyze_verify(tmp_path: Path) -> None:
    _throwaway_root(tmp_path)
    services = [p.name for p in sorted(UNITS.glob("*.service"))]
    assert services == ["kube-proxy.service", "kubelet.service"]
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", "--man=no", *services],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: an unknown key is reported (on stderr, exit 0)."""
    _throwaway_root(tmp_path)
    unit = tmp_path / "etc/systemd/system/kubelet.service"
    unit.write_text(unit.read_text().replace("Restart=always", "Restart=always\nRestartt=1"))
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", "--man=no", "kubelet.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Unknown key 'Restartt'" in done.stderr
