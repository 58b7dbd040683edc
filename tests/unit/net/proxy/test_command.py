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


def test_the_config_file_wins_over_flags_as_upstream(tmp_path: Path) -> None:
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
    notes: list[str] = []
    s = command.settings_from_args(
        _args(
            f"--config={cfg}",
            "--hostname-override=from-flag",
            "--iptables-sync-period=45s",
            "--node-routes=host-gw",
            "--v=3",
        ),
        note=notes.append,
    )
    assert s.kubeconfig == "/etc/kp.kubeconfig" and s.cluster_cidr == "10.88.0.0/16"
    assert s.hostname_override == "from-flag"  # upstream keeps this one flag
    assert s.nodeport_addresses == ("192.168.0.0/16",)
    assert (s.masquerade_all, s.masquerade_bit, s.min_sync_period, s.sync_period) == (
        True,
        12,
        2.0,
        60.0,
    )
    assert (s.node_routes, s.verbosity) == ("host-gw", 3)
    assert notes == [
        "--iptables-sync-period: ignored because --config is given (as kube-proxy does)"
    ]


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


# --- kube-proxy's own command line and kubeadm's ConfigMap ------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"


def test_kubeadms_config_conf_loads_with_upstream_defaults_and_no_warnings() -> None:
    """fixtures/kubeadm-v1.36.3-kube-proxy-config.conf is the config.conf of the kube-proxy
    ConfigMap `kubeadm init phase addon kube-proxy --dry-run` (v1.36.3) printed for a cluster
    with podSubnet 10.244.0.0/16; its DaemonSet runs
    `kube-proxy --config=... --hostname-override=$(NODE_NAME)`."""
    notes: list[str] = []
    s = settings.from_config_file(
        FIXTURES / "kubeadm-v1.36.3-kube-proxy-config.conf", note=notes.append
    )
    assert notes == []
    assert s.kubeconfig == "/var/lib/kube-proxy/kubeconfig.conf"
    assert (s.mode, s.cluster_cidr, s.bind_address) == ("iptables", "10.244.0.0/16", "0.0.0.0")
    assert (s.healthz_bind_address, s.metrics_bind_address) == ("0.0.0.0:10256", "127.0.0.1:10249")
    assert (s.min_sync_period, s.sync_period, s.masquerade_bit) == (1.0, 30.0, 14)
    assert (s.masquerade_all, s.localhost_nodeports, s.nodeport_addresses) == (False, True, ())
    assert s.verbosity == 0


def test_every_upstream_kube_proxy_flag_parses() -> None:
    names = (FIXTURES / "kube-proxy-v1.36.3-flags.txt").read_text().split()
    parser = argparse.ArgumentParser()
    command.add_flags(parser)
    for name in names:
        if name != "help":
            parser.parse_args([f"--{name}=1"])  # each is known (values are checked later)
    parser.parse_args(["--healthz-port=0", "--metrics-port=0", "-v", "2"])  # deprecated ones


@pytest.mark.parametrize("argv", [["--version"], ["--version=true"]])
def test_kube_proxy_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert command.kube_proxy_main(argv) == 0
    assert capsys.readouterr().out == "Kubernetes v1.36.3\n"


def test_mode_sections_give_the_periods_and_masquerading(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    body = (
        "iptables: {syncPeriod: 10s, masqueradeAll: false}\n"
        "ipvs: {syncPeriod: 20s}\n"
        "nftables: {syncPeriod: 40s, minSyncPeriod: 0s, masqueradeAll: true, masqueradeBit: 3}\n"
    )
    cfg.write_text(HEADER + "mode: ipvs\n" + body)
    s = settings.from_config_file(cfg)
    assert (s.mode, s.min_sync_period, s.sync_period) == ("ipvs", 0.0, 20.0)  # no ipvs default
    cfg.write_text(HEADER + "mode: nftables\n" + body)
    s = settings.from_config_file(cfg)
    assert (s.min_sync_period, s.sync_period, s.masquerade_all, s.masquerade_bit) == (
        1.0,
        40.0,
        True,
        3,
    )
    cfg.write_text(HEADER + 'mode: ""\n' + body)
    s = settings.from_config_file(cfg)
    assert (s.mode, s.sync_period, s.masquerade_all) == ("iptables", 10.0, False)


def test_unimplemented_and_unknown_fields_warn_by_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        HEADER + "conntrack: {maxPerCore: 1000}\nipvs: {scheduler: lc, strictARP: true}\n"
        "featureGates: {Foo: true}\ndetectLocalMode: NodeCIDR\nbogus: 1\n"
        "iptables: {typo: 1}\nlogging: {format: json}\n"
    )
    notes: list[str] = []
    settings.from_config_file(cfg, note=notes.append)
    assert [n.removeprefix(f"{cfg}: ") for n in notes] == [
        "detectLocalMode: 'NodeCIDR' is not implemented by pykubelet; ignored",
        'unknown field "bogus"; ignored',
        "ipvs.scheduler: 'lc' is not implemented by pykubelet; ignored",
        "ipvs.strictARP: True is not implemented by pykubelet; ignored",
        "conntrack.maxPerCore: 1000 is not implemented by pykubelet; ignored",
        "logging.format: 'json' is not implemented by pykubelet; ignored",
        'unknown field "iptables.typo"; ignored',
        "featureGates.Foo: pykubelet has no feature gates; ignored",
    ]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("nodePortAddresses: [primary]\n", '"primary" is not implemented'),
        ("conntrack: {maxPerCore: lots}\n", "conntrack.maxPerCore: expected an integer"),
        ("ipvs: {tcpTimeout: soon}\n", "ipvs.tcpTimeout"),
        ("mode: kernelspace\n", 'proxy mode "kernelspace"'),
    ],
)
def test_unsafe_or_malformed_fields_are_errors(tmp_path: Path, body: str, needle: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(HEADER + body)
    with pytest.raises(SettingsError, match=needle):
        settings.from_config_file(cfg)


def test_flags_without_config_as_upstream() -> None:
    notes: list[str] = []
    s = command.settings_from_args(
        _args(
            "--proxy-mode=ipvs",
            "--iptables-sync-period=45s",  # not in ipvs mode
            "--ipvs-sync-period=50s",
            "--ipvs-min-sync-period=2s",
            "--healthz-port=0",
            "--masquerade-all",
            "--conntrack-max-per-core=0",
            "--ipvs-scheduler=rr",
            "--oom-score-adj=-999",
            "--feature-gates=Foo=true",
        ),
        note=notes.append,
    )
    assert (s.mode, s.sync_period, s.min_sync_period) == ("ipvs", 50.0, 2.0)
    assert (s.healthz_bind_address, s.masquerade_all) == ("", True)
    assert notes == [
        "--feature-gates: not implemented by pykubelet; ignored",
        "--conntrack-max-per-core: not implemented by pykubelet; ignored",
    ]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--write-config-to=/tmp/x"], "--write-config-to: not implemented"),
        (["--init-only"], "--init-only: not implemented"),
        (["--nodeport-addresses=primary"], '"primary" is not implemented'),
        (["--masquerade-all=sometimes"], "--masquerade-all: invalid boolean"),
    ],
)
def test_refused_flags(argv: list[str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        command.settings_from_args(_args(*argv))
