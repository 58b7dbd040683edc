"""KubeletConfiguration decoding: upstream's defaults (zero values count as unset), every error
path, warnings for unknown fields, Go durations, quantities, labels and taints."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelet.config import (
    API_VERSION,
    KIND,
    ConfigError,
    KubeletConfiguration,
    Taint,
    format_duration,
    from_dict,
    load_file,
    loads,
    parse_duration,
    parse_labels,
    parse_node_ips,
    parse_quantity,
    parse_taints,
    to_dict,
)

HEADER = {"apiVersion": API_VERSION, "kind": KIND}


def decode(**fields: Any) -> KubeletConfiguration:
    return from_dict({**HEADER, **fields})


def error_of(**fields: Any) -> str:
    with pytest.raises(ConfigError) as info:
        decode(**fields)
    return str(info.value)


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_are_upstream_v1beta1() -> None:
    c = load_file(None)
    assert c == KubeletConfiguration() == decode()
    assert (c.address, c.port, c.read_only_port) == ("0.0.0.0", 10250, 0)
    assert c.sync_frequency == timedelta(minutes=1)
    assert c.file_check_frequency == timedelta(seconds=20)
    assert c.node_status_update_frequency == timedelta(seconds=10)
    assert c.node_status_report_frequency == timedelta(minutes=5)
    assert c.node_lease_duration_seconds == 40
    assert (c.image_gc_high_threshold_percent, c.image_gc_low_threshold_percent) == (85, 80)
    assert c.image_minimum_gc_age == timedelta(minutes=2)
    assert c.volume_stats_agg_period == timedelta(minutes=1)
    assert (c.cgroup_driver, c.cgroup_root, c.cgroups_per_qos) == ("cgroupfs", "", True)
    assert c.fail_cgroup_v1 is False
    assert c.runtime_request_timeout == timedelta(minutes=2)
    assert (c.max_pods, c.pod_pids_limit) == (110, -1)
    assert (c.resolv_conf, c.cluster_dns, c.cluster_domain) == ("/etc/resolv.conf", (), "")
    assert c.hairpin_mode == "promiscuous-bridge"
    assert c.serialize_image_pulls is True and c.max_parallel_image_pulls is None
    assert dict(c.eviction_hard) == {
        "memory.available": "100Mi",
        "nodefs.available": "10%",
        "imagefs.available": "15%",
        "nodefs.inodesFree": "5%",
    }
    assert c.eviction_pressure_transition_period == timedelta(minutes=5)
    assert c.enforce_node_allocatable == ("pods",)
    assert (c.container_log_max_size, c.container_log_max_files) == ("10Mi", 5)
    assert c.container_runtime_endpoint == "unix:///run/containerd/containerd.sock"
    assert c.register_node is True and c.register_with_taints == ()
    assert c.authentication.webhook.enabled is True
    assert c.authentication.webhook.cache_ttl == timedelta(minutes=2)
    assert c.authentication.anonymous.enabled is False
    assert c.authorization.mode == "Webhook"
    assert c.authorization.webhook.cache_authorized_ttl == timedelta(minutes=5)
    assert c.authorization.webhook.cache_unauthorized_ttl == timedelta(seconds=30)
    assert (c.healthz_bind_address, c.healthz_port) == ("127.0.0.1", 10248)
    assert c.enable_debugging_handlers is True


def test_configuration_is_frozen_and_maps_read_only() -> None:
    c = KubeletConfiguration()
    with pytest.raises(AttributeError):
        c.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.eviction_hard["memory.available"] = "1Gi"  # type: ignore[index]
    assert KubeletConfiguration().eviction_hard is not c.eviction_hard


def test_zero_values_get_defaults_as_upstream() -> None:
    c = decode(syncFrequency="0s", port=0, maxPods=0, cgroupDriver="", address="")
    assert c.sync_frequency == timedelta(minutes=1)
    assert (c.port, c.max_pods, c.cgroup_driver, c.address) == (10250, 110, "cgroupfs", "0.0.0.0")
    assert decode(healthzPort=0).healthz_port == 0  # a pointer upstream: 0 disables
    assert decode(resolvConf="").resolv_conf == ""


def test_null_values_mean_unset() -> None:
    assert decode(syncFrequency=None, authentication=None) == KubeletConfiguration()


def test_report_frequency_follows_update_frequency_when_only_that_is_set() -> None:
    c = decode(nodeStatusUpdateFrequency="20s")
    assert c.node_status_report_frequency == timedelta(seconds=20)
    c = decode(nodeStatusUpdateFrequency="20s", nodeStatusReportFrequency="1m")
    assert c.node_status_report_frequency == timedelta(minutes=1)


def test_serialize_image_pulls_defaults_from_max_parallel() -> None:
    assert decode(maxParallelImagePulls=1).serialize_image_pulls is True
    assert decode(maxParallelImagePulls=5).serialize_image_pulls is False
    assert "serializeImagePulls: false" in error_of(
        serializeImagePulls=True, maxParallelImagePulls=5
    )


def test_eviction_hard_given_replaces_all_defaults() -> None:
    c = decode(evictionHard={"memory.available": "200Mi"})
    assert dict(c.eviction_hard) == {"memory.available": "200Mi"}


# --- full file round trip -----------------------------------------------------------------------

FULL = """
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 10.0.0.5
port: 10260
readOnlyPort: 10255
staticPodPath: /etc/kubernetes/manifests
podLogsDir: /srv/pod-logs
failSwapOn: false
memorySwap: {swapBehavior: NoSwap}
mergeDefaultEvictionSettings: true
syncFrequency: 1m30s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
nodeStatusReportFrequency: 1m
nodeLeaseDurationSeconds: 20
imageMinimumGCAge: 5m
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 70
volumeStatsAggPeriod: 2m
cgroupDriver: systemd
cgroupRoot: /
cgroupsPerQOS: false
failCgroupV1: true
runtimeRequestTimeout: 500ms
maxPods: 50
podPidsLimit: 4096
allowedUnsafeSysctls: ["net.core.somaxconn", "kernel.msg*"]
podCIDR: 10.244.1.0/24
resolvConf: /run/systemd/resolve/resolv.conf
clusterDNS: [10.96.0.10, "fd00::a"]
clusterDomain: cluster.local
hairpinMode: hairpin-veth
serializeImagePulls: false
maxParallelImagePulls: 3
evictionHard: {memory.available: 200Mi, nodefs.available: 5%}
evictionSoft: {memory.available: 500Mi}
evictionSoftGracePeriod: {memory.available: 1m30s}
evictionPressureTransitionPeriod: 30s
evictionMinimumReclaim: {memory.available: 100Mi}
evictionMaxPodGracePeriod: 20
kubeReserved: {cpu: 100m, memory: 256Mi, pid: "1000"}
systemReserved: {cpu: 1, ephemeral-storage: 1Gi, hugepages-2Mi: 0}
systemReservedCgroup: /system.slice
kubeReservedCgroup: /kube.slice
enforceNodeAllocatable: [pods, system-reserved]
containerLogMaxSize: 50Mi
containerLogMaxFiles: 3
containerRuntimeEndpoint: unix:///run/crio/crio.sock
imageServiceEndpoint: unix:///run/images.sock
shutdownGracePeriod: 30s
shutdownGracePeriodCriticalPods: 10s
registerNode: false
registerWithTaints:
- {key: dedicated, value: infra, effect: NoSchedule}
- {key: example.com/gpu, effect: NoExecute}
authentication:
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
  webhook: {enabled: false, cacheTTL: 10s}
  anonymous: {enabled: true}
authorization:
  mode: AlwaysAllow
  webhook: {cacheAuthorizedTTL: 1m, cacheUnauthorizedTTL: 5s}
serverTLSBootstrap: true
tlsCertFile: /pki/kubelet.crt
tlsPrivateKeyFile: /pki/kubelet.key
rotateCertificates: true
healthzBindAddress: 0.0.0.0
healthzPort: 0
enableDebuggingHandlers: false
nodeLabels: {tier: infra, node.kubernetes.io/role: edge}
providerID: aws:///eu-west-1a/i-1234
"""


def test_full_file_decodes_every_field(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    path.write_text(FULL)
    c = load_file(path)
    assert c.sync_frequency == timedelta(minutes=1, seconds=30)
    assert c.runtime_request_timeout == timedelta(milliseconds=500)
    assert c.cluster_dns == ("10.96.0.10", "fd00::a")
    assert dict(c.system_reserved) == {"cpu": "1", "ephemeral-storage": "1Gi", "hugepages-2Mi": "0"}
    assert c.eviction_soft_grace_period["memory.available"] == timedelta(seconds=90)
    assert c.register_with_taints == (
        Taint(key="dedicated", value="infra", effect="NoSchedule"),
        Taint(key="example.com/gpu", effect="NoExecute"),
    )
    assert c.authentication.x509.client_ca_file == "/etc/kubernetes/pki/ca.crt"
    assert c.authentication.webhook.cache_ttl == timedelta(seconds=10)
    assert c.authorization.webhook.cache_unauthorized_ttl == timedelta(seconds=5)
    assert c.serialize_image_pulls is False and c.max_parallel_image_pulls == 3
    assert c.healthz_port == 0 and c.fail_cgroup_v1 is True
    assert c.node_labels["node.kubernetes.io/role"] == "edge"
    assert c.allowed_unsafe_sysctls == ("net.core.somaxconn", "kernel.msg*")
    # every field was set away from its default
    defaults = KubeletConfiguration()
    got, base = to_dict(c), to_dict(defaults)
    same = [k for k in got if got[k] == base.get(k) and k not in HEADER]
    assert same == ["shutdownGracePeriodByPodPriority"]  # excludes shutdownGracePeriod


def test_round_trip_through_yaml_is_lossless() -> None:
    c = loads(FULL)
    text = yaml.safe_dump(to_dict(c))
    assert loads(text) == c
    assert loads(yaml.safe_dump(to_dict(KubeletConfiguration()))) == KubeletConfiguration()
    assert to_dict(c)["syncFrequency"] == "1m30s"


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    body: dict[str, Any] = {**HEADER, "staticPodPath": "manifests", "tlsCertFile": "/abs.crt"}
    body |= {"tlsPrivateKeyFile": "k.key", "authentication": {"x509": {"clientCAFile": "ca.crt"}}}
    path.write_text(yaml.safe_dump(body))
    c = load_file(path)
    assert c.static_pod_path == str(tmp_path / "manifests")
    assert c.tls_cert_file == "/abs.crt"
    assert c.tls_private_key_file == str(tmp_path / "k.key")
    assert c.authentication.x509.client_ca_file == str(tmp_path / "ca.crt")


# --- error paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"syncFrequency": "ten seconds"},
            'KubeletConfiguration.syncFrequency: invalid duration "ten seconds"',
        ),
        ({"syncFrequency": 10}, "KubeletConfiguration.syncFrequency: invalid duration 10"),
        ({"syncFrequency": "-1s"}, 'KubeletConfiguration.syncFrequency: invalid duration "-1s"'),
        (
            {"evictionHard": {"memory.avail": "1Mi"}},
            'KubeletConfiguration.evictionHard: unknown signal "memory.avail"',
        ),
        (
            {"evictionHard": {"memory.available": "lots"}},
            'KubeletConfiguration.evictionHard[memory.available]: invalid quantity "lots"',
        ),
        (
            {"evictionHard": {"nodefs.available": "120%"}},
            'KubeletConfiguration.evictionHard[nodefs.available]: invalid percentage "120%"',
        ),
        (
            {"evictionMinimumReclaim": {"memory.available": "-1Mi"}},
            "KubeletConfiguration.evictionMinimumReclaim[memory.available]: "
            'invalid quantity "-1Mi": must not be negative',
        ),
        (
            {"evictionSoftGracePeriod": {"memory.available": "soon"}},
            "KubeletConfiguration.evictionSoftGracePeriod[memory.available]: "
            'invalid duration "soon"',
        ),
        (
            {"evictionSoft": {"memory.available": "1Gi"}},
            'KubeletConfiguration.evictionSoftGracePeriod: soft threshold "memory.available"',
        ),
        (
            {"kubeReserved": {"gpu": "1"}},
            'KubeletConfiguration.kubeReserved: unknown resource "gpu"',
        ),
        (
            {"systemReserved": {"memory": "1Q"}},
            'KubeletConfiguration.systemReserved[memory]: invalid quantity "1Q"',
        ),
        ({"port": "10250"}, "KubeletConfiguration.port: expected an integer, got string '10250'"),
        ({"port": 70000}, "KubeletConfiguration.port: invalid value 70000: must be at most 65535"),
        ({"registerNode": "yes"}, "KubeletConfiguration.registerNode: expected a boolean"),
        ({"maxPods": True}, "KubeletConfiguration.maxPods: expected an integer, got boolean"),
        ({"podPidsLimit": -2}, "KubeletConfiguration.podPidsLimit: invalid value -2"),
        (
            {"allowedUnsafeSysctls": ["vm.swappiness"]},
            'KubeletConfiguration.allowedUnsafeSysctls[0]: the sysctls "vm.swappiness" are not',
        ),
        ({"containerLogMaxFiles": 1}, "KubeletConfiguration.containerLogMaxFiles: invalid value 1"),
        (
            {"containerLogMaxSize": "ten megs"},
            'KubeletConfiguration.containerLogMaxSize: invalid quantity "ten megs"',
        ),
        ({"address": "localhost"}, 'KubeletConfiguration.address: invalid IP address "localhost"'),
        (
            {"clusterDNS": ["10.0.0.1", "x"]},
            'KubeletConfiguration.clusterDNS[1]: invalid IP address "x"',
        ),
        ({"clusterDNS": "10.0.0.1"}, "KubeletConfiguration.clusterDNS: expected a list"),
        ({"podCIDR": "10.244.1.0"}, 'KubeletConfiguration.podCIDR: invalid CIDR "10.244.1.0"'),
        (
            {"cgroupDriver": "cgroup"},
            'KubeletConfiguration.cgroupDriver: unsupported value "cgroup"',
        ),
        ({"hairpinMode": "x"}, 'KubeletConfiguration.hairpinMode: unsupported value "x"'),
        (
            {"authorization": {"mode": "RBAC"}},
            'KubeletConfiguration.authorization.mode: unsupported value "RBAC"',
        ),
        (
            {"authentication": {"webhook": {"cacheTTL": "2 min"}}},
            'KubeletConfiguration.authentication.webhook.cacheTTL: invalid duration "2 min"',
        ),
        ({"authentication": []}, "KubeletConfiguration.authentication: expected a mapping"),
        (
            {"containerRuntimeEndpoint": "tcp://1.2.3.4:5"},
            'KubeletConfiguration.containerRuntimeEndpoint: invalid endpoint "tcp://1.2.3.4:5"',
        ),
        (
            {"registerWithTaints": [{"key": "a", "effect": "Sometimes"}]},
            'KubeletConfiguration.registerWithTaints[0]: invalid taint effect "Sometimes"',
        ),
        (
            {"registerWithTaints": [{"key": "-a", "effect": "NoSchedule"}]},
            'KubeletConfiguration.registerWithTaints[0]: invalid taint key: invalid label key "-a"',
        ),
        (
            {"nodeLabels": {"tier": "bad value"}},
            'KubeletConfiguration.nodeLabels[tier]: invalid label value "bad value"',
        ),
        (
            {"nodeLabels": {"kubernetes.io/role": "x"}},
            'KubeletConfiguration.nodeLabels: label "kubernetes.io/role"',
        ),
        (
            {"imageGCHighThresholdPercent": 70, "imageGCLowThresholdPercent": 70},
            "KubeletConfiguration.imageGCLowThresholdPercent: 70 must be less than",
        ),
        (
            {"enforceNodeAllocatable": ["pods", "none"]},
            'KubeletConfiguration.enforceNodeAllocatable: "none" cannot be combined',
        ),
        (
            {"enforceNodeAllocatable": ["kube-reserved"]},
            'KubeletConfiguration.enforceNodeAllocatable: "kube-reserved" is enforced but '
            "kubeReservedCgroup is not set",
        ),
        (
            {"enforceNodeAllocatable": ["everything"]},
            'KubeletConfiguration.enforceNodeAllocatable[0]: unsupported value "everything"',
        ),
        ({"tlsCertFile": "/a.crt"}, "KubeletConfiguration.tlsCertFile: tlsCertFile and"),
        (
            {"shutdownGracePeriod": "10s", "shutdownGracePeriodCriticalPods": "20s"},
            "KubeletConfiguration.shutdownGracePeriodCriticalPods: must not be longer",
        ),
        (
            {"maxParallelImagePulls": 0},
            "KubeletConfiguration.maxParallelImagePulls: invalid value 0",
        ),
    ],
)
def test_bad_settings_name_the_field_path_and_value(fields: dict[str, Any], message: str) -> None:
    assert error_of(**fields).startswith(message)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": KIND}, 'KubeletConfiguration: missing "apiVersion"'),
        ({"apiVersion": API_VERSION}, 'KubeletConfiguration: missing "kind"'),
        (
            {"apiVersion": "kubelet.config.k8s.io/v1", "kind": KIND},
            'KubeletConfiguration.apiVersion: unsupported value "kubelet.config.k8s.io/v1"',
        ),
        (
            {"apiVersion": API_VERSION, "kind": "KubeProxyConfiguration"},
            'KubeletConfiguration.kind: unsupported value "KubeProxyConfiguration"',
        ),
        ([1, 2], "KubeletConfiguration: expected a mapping, got list"),
        (None, "KubeletConfiguration: expected a mapping, got null"),
    ],
)
def test_wrong_header_or_shape_is_an_error(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        from_dict(data)


def test_named_missing_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_file(missing)
    assert str(info.value) == f"{missing}: kubelet config file not found"
    assert info.value.path == str(missing)


def test_named_empty_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n")
    with pytest.raises(
        ConfigError, match="^" + re.escape(f"{empty}: the kubelet config file is empty")
    ):
        load_file(empty)


def test_invalid_yaml_is_an_error_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{bad}: invalid YAML")):
        load_file(bad)


# --- durations and quantities ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("10s", timedelta(seconds=10)),
        ("1m30s", timedelta(seconds=90)),
        ("1h", timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("1ms", timedelta(milliseconds=1)),
        ("250us", timedelta(microseconds=250)),
        ("250\u00b5s", timedelta(microseconds=250)),
        ("1500ns", timedelta(microseconds=2)),
        (".5s", timedelta(milliseconds=500)),
        ("1.s", timedelta(seconds=1)),
        ("+5s", timedelta(seconds=5)),
        ("-5s", timedelta(seconds=-5)),
        ("2h45m10.5s", timedelta(hours=2, minutes=45, seconds=10.5)),
    ],
)
def test_parse_duration(text: str, want: timedelta) -> None:
    assert parse_duration(text) == want


@pytest.mark.parametrize(
    "text", ["", "10", "ten seconds", "1d", "1 s", "s", "1m30", ".s", "-", "3000000h"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=10), "10s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1), "1h0m0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(microseconds=7), "7\u00b5s"),
        (timedelta(seconds=1.25), "1.25s"),
        (timedelta(seconds=-90), "-1m30s"),
    ],
)
def test_format_duration_matches_go_and_round_trips(value: timedelta, want: str) -> None:
    assert format_duration(value) == want
    assert parse_duration(want) == value


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("0", Decimal(0)),
        ("2", Decimal(2)),
        ("500m", Decimal("0.5")),
        ("100Mi", Decimal(100 * 2**20)),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1Ei", Decimal(2**60)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("2G", Decimal(2 * 10**9)),
        ("1E", Decimal(10**18)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("5e-1", Decimal("0.5")),
        ("10n", Decimal("1e-8")),
        ("3u", Decimal("3e-6")),
        (".5", Decimal("0.5")),
        ("-1Mi", Decimal(-(2**20))),
        ("+2", Decimal(2)),
    ],
)
def test_parse_quantity(text: str, want: Decimal) -> None:
    assert parse_quantity(text) == want


@pytest.mark.parametrize("text", ["", "Mi", "10%", "1MiB", "1.2.3", "1 Mi", "abc", "1e", "1m1"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)


# --- labels, taints, node IPs --------------------------------------------------------------------


def test_parse_labels() -> None:
    assert parse_labels("a=b,example.com/tier=front,empty=") == {
        "a": "b",
        "example.com/tier": "front",
        "empty": "",
    }
    assert parse_labels("node.kubernetes.io/role=x,topology.kubernetes.io/zone=z") == {
        "node.kubernetes.io/role": "x",
        "topology.kubernetes.io/zone": "z",
    }
    assert parse_labels(" spaced = v ,alone") == {"spaced": "v", "alone": ""}  # as upstream


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("=b", 'invalid label key ""'),
        ("-a=b", 'invalid label key "-a"'),
        ("a_=b", 'invalid label key "a_"'),
        ("x" * 64 + "=b", "invalid label key"),
        ("Example.com/a=b", 'invalid label key "Example.com/a": prefix'),
        ("/a=b", 'invalid label key "/a"'),
        ("a=b c", 'invalid label value "b c"'),
        ("a=" + "v" * 64, "invalid label value"),
        ("a=-v", 'invalid label value "-v"'),
        ("kubernetes.io/role=master", 'label "kubernetes.io/role" is in the kubernetes.io'),
        ("foo.k8s.io/x=y", 'label "foo.k8s.io/x"'),
    ],
)
def test_parse_labels_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_labels(text)
    assert str(info.value).startswith(message)


def test_parse_taints() -> None:
    assert parse_taints("a=b:NoSchedule,example.com/c:NoExecute, d=:PreferNoSchedule") == (
        Taint(key="a", value="b", effect="NoSchedule"),
        Taint(key="example.com/c", effect="NoExecute"),
        Taint(key="d", effect="PreferNoSchedule"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=b", 'invalid taint spec "a=b"'),
        ("a=b:Never", 'invalid taint effect "Never"'),
        ("a=b=c:NoSchedule", 'invalid taint spec "a=b=c:NoSchedule"'),
        ("-a:NoSchedule", 'invalid taint key: invalid label key "-a"'),
        ("a=b c:NoSchedule", 'invalid label value "b c"'),
        (":NoSchedule", 'invalid taint spec ":NoSchedule"'),
    ],
)
def test_parse_taints_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_taints(text)
    assert str(info.value).startswith(message)


def test_parse_node_ips() -> None:
    assert parse_node_ips("10.0.0.5") == ("10.0.0.5",)
    assert parse_node_ips("10.0.0.5, fd00::0005") == ("10.0.0.5", "fd00::5")
    for bad, message in [
        ("10.0.0", 'invalid IP address "10.0.0"'),
        ("10.0.0.1,10.0.0.2", "dual-stack"),
        ("10.0.0.1,fd00::1,fd00::2", "at most two"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_node_ips(bad)
