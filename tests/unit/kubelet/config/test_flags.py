"""The kubelet command line: every upstream v1.36 flag parses (the list `kubelet --help` of the
Go kubelet built from the same release prints, in fixtures/), kubeadm's systemd drop-in and
kubeadm-flags.env, upstream's precedence (defaults < --config < --config-dir drop-ins < flags),
warnings naming the flags pykubelet ignores, and errors naming the bad flag."""

from __future__ import annotations

import argparse
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelet.config import (
    API_VERSION,
    KIND,
    ConfigError,
    KubeletConfiguration,
    RunConfig,
    Taint,
    add_run_flags,
    load,
    node_name,
    normalize_argv,
)
from kubelet.config.flagtable import FLAGS

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = {"apiVersion": API_VERSION, "kind": KIND}


def parse_run(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    return parser.parse_args(list(argv))


def run_config(
    *argv: str, hostname: str = "Node-1.Example.COM", notes: list[str] | None = None
) -> RunConfig:
    sink = notes.append if notes is not None else (lambda line: None)
    return load(parse_run(*normalize_argv(argv)), hostname=lambda: hostname, note=sink)


def test_flags_defaults() -> None:
    rc = run_config()
    assert rc.kubelet == KubeletConfiguration()
    assert rc.node_name == "node-1.example.com"
    assert (rc.kubeconfig, rc.bootstrap_kubeconfig, rc.config_file) == (None, None, None)
    assert rc.root_dir == Path("/var/lib/kubelet")
    assert rc.cert_dir == Path("/var/lib/kubelet/pki")
    assert (rc.node_ips, rc.verbosity) == ((), 0)


def test_flags_fill_run_config(tmp_path: Path) -> None:
    rc = run_config(
        "--kubeconfig=/etc/kubelet.conf",
        "--bootstrap-kubeconfig",
        "/etc/bootstrap.conf",
        "--hostname-override= Worker-2 ",
        "--node-ip=10.0.0.5,fd00::5",
        "--root-dir",
        str(tmp_path),
        "-v",
        "4",
    )
    assert rc.kubeconfig == Path("/etc/kubelet.conf")
    assert rc.bootstrap_kubeconfig == Path("/etc/bootstrap.conf")
    assert rc.node_name == "worker-2"
    assert rc.node_ips == ("10.0.0.5", "fd00::5")
    assert (rc.root_dir, rc.cert_dir) == (tmp_path, tmp_path / "pki")
    assert rc.verbosity == 4
    assert run_config("--cert-dir=/certs", "--v=2").cert_dir == Path("/certs")


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    body = {
        **HEADER,
        "containerRuntimeEndpoint": "unix:///run/crio/crio.sock",
        "podCIDR": "10.244.0.0/24",
        "registerWithTaints": [{"key": "file", "effect": "NoSchedule"}],
        "nodeLabels": {"from": "file", "tier": "file"},
        "maxPods": 30,
    }
    path.write_text(yaml.safe_dump(body))
    rc = run_config(
        f"--config={path}",
        "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
        "--pod-cidr=10.244.7.0/24",
        "--register-with-taints=flag=yes:NoExecute",
        "--node-labels=tier=flag,extra=1",
    )
    c = rc.kubelet
    assert rc.config_file == path
    assert c.container_runtime_endpoint == "unix:///run/containerd/containerd.sock"
    assert c.pod_cidr == "10.244.7.0/24"
    assert c.register_with_taints == (Taint(key="flag", value="yes", effect="NoExecute"),)
    assert dict(c.node_labels) == {"from": "file", "tier": "flag", "extra": "1"}
    assert c.max_pods == 30  # no flag: the file's value stays
    assert run_config(f"--config={path}").kubelet.pod_cidr == "10.244.0.0/24"


def test_runtime_endpoint_flag_accepts_a_bare_socket_path() -> None:
    rc = run_config("--container-runtime-endpoint=/run/k3s/containerd.sock")
    assert rc.kubelet.container_runtime_endpoint == "unix:///run/k3s/containerd.sock"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--node-ip=10.0.0.300"], '--node-ip: invalid IP address "10.0.0.300"'),
        (["--node-ip=10.0.0.1,10.0.0.2"], "--node-ip: dual-stack"),
        (["--node-labels=a=b,-c=d"], '--node-labels: invalid label key "-c"'),
        (["--node-labels=kubernetes.io/role=x"], '--node-labels: label "kubernetes.io/role"'),
        (
            ["--register-with-taints=a=b:Nope"],
            '--register-with-taints: invalid taint effect "Nope"',
        ),
        (["--register-with-taints=a=b"], '--register-with-taints: invalid taint spec "a=b"'),
        (["--pod-cidr=10.244.0.0/33"], '--pod-cidr: invalid CIDR "10.244.0.0/33"'),
        (["--container-runtime-endpoint=tcp://x:1"], "--container-runtime-endpoint: invalid"),
        (
            ["--hostname-override=not_valid"],
            '--hostname-override: invalid DNS subdomain "not_valid"',
        ),
        (["--config=/nonexistent/kubelet.yaml"], "/nonexistent/kubelet.yaml: kubelet config file"),
    ],
)
def test_bad_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        run_config(*argv)
    assert str(info.value).startswith(message)


def test_node_name_from_the_machine_hostname() -> None:
    assert node_name("", lambda: " MyHost\n") == "myhost"
    assert node_name("Override", lambda: "ignored") == "override"
    with pytest.raises(ConfigError, match=r"^hostname: empty hostname is invalid"):
        node_name("", lambda: "  ")


def test_run_flags_coexist_with_a_parent_verbosity_flag() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0)
    sub = parser.add_subparsers(dest="command")
    add_run_flags(sub.add_parser("run"))
    same_parser = argparse.ArgumentParser()
    same_parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0)
    add_run_flags(same_parser)  # keeps the parser's own -v
    args = parser.parse_args(["-v", "3", "run", "--node-ip=10.0.0.1"])
    rc = load(args, hostname=lambda: "h")
    assert rc.verbosity == 3 and rc.node_ips == ("10.0.0.1",)
    assert load(parser.parse_args(["run", "--v=5"]), hostname=lambda: "h").verbosity == 5


# --- the whole upstream command line -----------------------------------------------------------


def upstream_flags() -> list[str]:
    return (FIXTURES / "kubelet-v1.36.3-flags.txt").read_text().split()


def test_the_flag_table_is_upstreams() -> None:
    ours = {f.name for f in FLAGS} | {"help"}
    assert set(upstream_flags()) == ours - {"pod-infra-container-image"}


# A value each kind of flag accepts, for the parse-everything test.
SAMPLE = {
    "str": "x",
    "bool": "false",
    "int": "7",
    "duration": "30s",
    "list": "a,b",
    "map": "a=b",
    "map-nosplit": "a=b,c",
    "langle-map": "memory.available<1Gi",
    "bool-map": "A=true",
    "colon-multimap": "a:b",
    "taints": "k=v:NoSchedule",
    "reserved-memory": "0:memory=1Gi",
}


@pytest.mark.parametrize("name", [n for n in upstream_flags() if n != "help"])
def test_every_upstream_flag_parses(name: str) -> None:
    flag = next(f for f in FLAGS if f.name == name)
    args = parse_run(f"--{name}={SAMPLE[flag.kind]}")
    assert getattr(args, flag.dest) in ([SAMPLE[flag.kind]], int(SAMPLE["int"]))


def write(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({**HEADER, **body}))
    return path


def test_kubeadm_systemd_drop_in_and_flags_env(tmp_path: Path) -> None:
    """ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS
    $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS, with kubeadm's own files."""
    config = tmp_path / "config.yaml"
    config.write_text((FIXTURES / "kubeadm-v1.36.3-config.yaml").read_text())
    env = (FIXTURES / "kubeadm-v1.36.3-flags.env").read_text()
    kubeadm_args = shlex.split(env.partition("=")[2])[0]
    argv = [
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        f"--config={config}",
        *shlex.split(kubeadm_args),
        # what older kubeadm versions and users put there too
        "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
        "--pod-infra-container-image=registry.k8s.io/pause:3.10",
        "--node-labels=node.kubernetes.io/exclude-from-external-load-balancers=",
        "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule",
        "-v",
        "2",
    ]
    notes: list[str] = []
    rc = run_config(*argv, notes=notes)
    assert rc.node_name == "node-1" and rc.node_ips == ("198.18.0.11",)
    assert rc.kubeconfig == Path("/etc/kubernetes/kubelet.conf")
    assert rc.bootstrap_kubeconfig == Path("/etc/kubernetes/bootstrap-kubelet.conf")
    assert rc.verbosity == 2
    kc = rc.kubelet
    assert kc.container_runtime_endpoint == "unix:///run/containerd/containerd.sock"
    assert kc.cgroup_driver == "systemd" and kc.sync_frequency == timedelta(minutes=1)
    assert kc.register_with_taints == (
        Taint("node-role.kubernetes.io/control-plane", "NoSchedule"),
    )
    assert notes == ["--pod-infra-container-image: not implemented by pykubelet; ignored"]


def test_flags_override_drop_ins_which_override_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", {"maxPods": 10, "port": 10260, "podPidsLimit": 5})
    dropins = tmp_path / "conf.d"
    dropins.mkdir()
    write(dropins / "10-a.conf", {"maxPods": 20, "port": 10270})
    write(dropins / "20-b.conf", {"maxPods": 30})
    rc = run_config(f"--config={config}", f"--config-dir={dropins}", "--max-pods=40")
    assert (rc.kubelet.max_pods, rc.kubelet.port, rc.kubelet.pod_pids_limit) == (40, 10270, 5)
    assert rc.config_dir == dropins
    rc = run_config(f"--config={config}", f"--config-dir={dropins}")
    assert rc.kubelet.max_pods == 30


def test_config_flags_map_onto_fields(tmp_path: Path) -> None:
    rc = run_config(
        "--fail-swap-on=false",
        "--healthz-port=0",
        "--healthz-bind-address=0.0.0.0",
        "--anonymous-auth",
        "--authorization-mode=AlwaysAllow",
        "--client-ca-file=/pki/ca.crt",
        "--eviction-hard=memory.available<1Gi,nodefs.available<5%",
        "--eviction-hard=pid.available<10%",  # repeated map flags accumulate
        "--system-reserved=cpu=100m,memory=1Gi",
        "--cluster-dns=10.96.0.10,10.96.0.11",
        "--node-status-update-frequency=20s",
        "--pod-manifest-path=/etc/kubernetes/manifests",
        "--cgroups-per-qos=F",
        "--pod_max_pids=100",  # pflag reads '_' as '-'
    )
    kc = rc.kubelet
    assert kc.fail_swap_on is False and kc.healthz_port == 0
    assert kc.healthz_bind_address == "0.0.0.0"
    assert kc.authentication.anonymous.enabled and kc.authorization.mode == "AlwaysAllow"
    assert kc.authentication.x509.client_ca_file == "/pki/ca.crt"
    assert dict(kc.eviction_hard) == {
        "memory.available": "1Gi",
        "nodefs.available": "5%",
        "pid.available": "10%",
    }
    assert dict(kc.system_reserved) == {"cpu": "100m", "memory": "1Gi"}
    assert kc.cluster_dns == ("10.96.0.10", "10.96.0.11")
    assert kc.node_status_report_frequency == timedelta(seconds=20)
    assert kc.static_pod_path == "/etc/kubernetes/manifests"
    assert kc.cgroups_per_qos is False and kc.pod_pids_limit == 100


def test_flags_pykubelet_ignores_are_one_warning_each() -> None:
    notes: list[str] = []
    run_config(
        "--cloud-provider=external",
        "--housekeeping-interval=30s",
        "--cpu-manager-policy=static",
        "--feature-gates=NodeSwap=true,Foo=false",
        "--logging-format=json",
        "--image-credential-provider-config=/etc/kubernetes/credential-providers.yaml",
        "--exit-on-lock-contention=false",  # upstream's default: nothing to say
        "--cgroup-root=",
        notes=notes,
    )
    assert notes == [
        "--cloud-provider: not implemented by pykubelet; ignored",
        "--image-credential-provider-config: not implemented by pykubelet; ignored",
        "--feature-gates[NodeSwap]: true: pykubelet has no feature gates; ignored",
        "--feature-gates[Foo]: false: pykubelet has no feature gates; ignored",
        "--cpu-manager-policy: 'static' is not implemented by pykubelet; ignored",
        "--logging-format: 'json' is not implemented by pykubelet; ignored",
        "--housekeeping-interval: not implemented by pykubelet; ignored",
    ]


def test_logging_verbosity_from_the_file_unless_v_is_given(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", {"logging": {"verbosity": 3}})
    assert run_config(f"--config={config}").verbosity == 3
    assert run_config(f"--config={config}", "--v=1").verbosity == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-pods=many"], '--max-pods: invalid integer "many"'),
        (["--fail-swap-on=maybe"], '--fail-swap-on: invalid boolean "maybe"'),
        (["--sync-frequency=soon"], '--sync-frequency: invalid duration "soon"'),
        (["--eviction-hard=memory.available=1Gi"], "--eviction-hard: malformed pair"),
        (["--cgroup-driver=cgroupv2"], '--cgroup-driver: unsupported value "cgroupv2"'),
        (["--healthz-bind-address=localhost"], "--healthz-bind-address: invalid IP address"),
        (["--seccomp-default"], "--seccomp-default: True is not implemented by pykubelet: pods"),
        (["--runonce=true"], "--runonce: True is not implemented by pykubelet"),
        (["--tls-min-version=VersionTLS13"], "--tls-min-version: 'VersionTLS13' is not"),
        (["--enable-server=false"], "--enable-server: False is not implemented"),
        (["--config-dir=/nonexistent/conf.d"], "/nonexistent/conf.d: kubelet drop-in config"),
    ],
)
def test_bad_or_unsafe_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        run_config(*argv)
    assert str(info.value).startswith(message)


def test_unknown_flags_are_refused_as_upstream() -> None:
    with pytest.raises(SystemExit):
        parse_run("--no-such-flag=1")
