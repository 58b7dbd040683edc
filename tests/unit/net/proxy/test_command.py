"""`pykubelet proxy` settings: kube-proxy's flag names, the KubeProxyConfiguration file, and
clear errors for bad values."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from net.proxy import command, settings
from net.proxy.settings import ProxySettings, SettingsError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["proxy", *argv])


def test_defaults_are_upstreams() -> None:
    s = command.settings_from_args(_args())
    assert (s.mode, s.healthz_bind_address, s.metrics_bind_address) == (
        "iptables",
        "0.0.0.0:10256",
        "127.0.0.1:10249",
    )
    assert (s.min_sync_period, s.sync_period, s.masquerade_bit) == (1.0, 30.0, 14)
    assert s.node_routes == "none"


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "kube-proxy.yaml"
    cfg.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
        "kind: KubeProxyConfiguration\n"
        "clientConnection: {kubeconfig: /etc/kp.kubeconfig}\n"
        "clusterCIDR: 10.88.0.0/16\n"
        "hostnameOverride: from-file\n"
        "nodePortAddresses: [192.168.0.0/16]\n"
        "iptables: {masqueradeAll: true, masqueradeBit: 12, minSyncPeriod: 2s, syncPeriod: 1m}\n"
        "conntrack: {maxPerCore: 0}\n"
    )
    s = command.settings_from_args(
        _args(f"--config={cfg}", "--hostname-override=from-flag", "--iptables-sync-period=45s")
    )
    assert s.kubeconfig == "/etc/kp.kubeconfig" and s.cluster_cidr == "10.88.0.0/16"
    assert s.hostname_override == "from-flag"
    assert s.nodeport_addresses == ("192.168.0.0/16",)
    assert (s.masquerade_all, s.masquerade_bit, s.min_sync_period, s.sync_period) == (
        True,
        12,
        2.0,
        45.0,
    )
    assert "conntrack" in s.extra


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        (
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n",
            "expected kind",
        ),
        ("[unclosed", "not valid YAML"),
        (
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
            "iptables: {syncPeriod: soon}\n",
            "iptables.syncPeriod",
        ),
        (
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
            "mode: userspace\n",
            'proxy mode "userspace"',
        ),
        (
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
            "logging: {verbosity: loud}\n",
            "logging.verbosity",
        ),
        (
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
            "nodePortAddresses: [10.0.0.0/33]\n",
            'nodePortAddresses "10.0.0.0/33"',
        ),
    ],
)
def test_bad_config_files_name_the_field(tmp_path: Path, yaml_text: str, needle: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(SettingsError) as info:
        settings.from_config_file(cfg)
    assert needle in str(info.value)


def test_validate_catches_inconsistent_periods_and_addresses() -> None:
    with pytest.raises(SettingsError, match="minSyncPeriod"):
        settings.validate(ProxySettings(min_sync_period=60, sync_period=30))
    with pytest.raises(SettingsError, match="expected host:port"):
        settings.validate(ProxySettings(healthz_bind_address="10256"))
    # a typo must not silently widen NodePorts to every local address
    with pytest.raises(SettingsError, match=r'nodePortAddresses "192\.168\.1\.0/2a"'):
        settings.validate(ProxySettings(nodeport_addresses=("10.0.0.0/8", "192.168.1.0/2a")))
    settings.validate(ProxySettings(nodeport_addresses=("10.0.0.0/8", "fd00::/64")))


def test_bad_flag_exits_with_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["--iptables-min-sync-period=fast"]) == settings.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("pykubelet proxy: --iptables-min-sync-period") and err.count("\n") == 1


def test_ipvs_mode_refuses_without_the_kernel_module(capsys: pytest.CaptureFixture[str]) -> None:
    from net.proxy import daemon

    if daemon_has_ipvs():
        pytest.skip("this kernel has IPVS")
    code = command.main(["--proxy-mode=ipvs", "--kubeconfig=/nonexistent"])
    assert code == settings.EXIT_UNSUPPORTED
    err = capsys.readouterr().err
    assert "CONFIG_IP_VS" in err and err.count("\n") == 1
    assert daemon.EXIT_UNSUPPORTED == settings.EXIT_UNSUPPORTED


def daemon_has_ipvs() -> bool:
    return Path("/proc/net/ip_vs").exists()


def test_localhost_nodeports_flag_and_config_field(tmp_path: Path) -> None:
    def parsed(*argv: str) -> ProxySettings:
        parser = argparse.ArgumentParser(prog="pykubelet")
        command.add_parser(parser.add_subparsers(dest="command", required=True))
        return command.settings_from_args(parser.parse_args(["proxy", *argv]))

    assert parsed().localhost_nodeports  # upstream's default
    assert not parsed("--iptables-localhost-nodeports=false").localhost_nodeports
    assert parsed("--iptables-localhost-nodeports").localhost_nodeports
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "iptables: {localhostNodePorts: false}\n"
    )
    assert not settings.from_config_file(cfg).localhost_nodeports


@pytest.mark.parametrize("argv", [["--cleanup"], ["--kubeconfig=/nonexistent"]])
def test_no_iptables_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    from kube.apiserver import ApiClient
    from net.proxy.iptables import executor as iptables_exec

    class Client:
        async def close(self) -> None:
            pass

    def missing() -> iptables_exec.Backend:
        raise RuntimeError("neither iptables-nft-restore nor iptables-legacy-restore is installed")

    monkeypatch.setattr(iptables_exec, "detect", missing)
    monkeypatch.setattr(ApiClient, "from_kubeconfig", lambda path: Client())
    assert command.main(argv) == settings.EXIT_UNSUPPORTED
    err = capsys.readouterr().err
    assert err.startswith("pykubelet proxy: neither iptables-nft-restore") and err.count("\n") == 1
