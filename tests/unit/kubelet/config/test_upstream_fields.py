"""The whole KubeletConfiguration v1beta1 schema: the file kubeadm v1.36 writes loads with
upstream's defaulting (zero durations are unset), fields pykubelet does not implement are warnings
naming them (errors where ignoring is unsafe), unknown fields are warnings as upstream's lenient
decoding makes them.

fixtures/kubeadm-v1.36.3-config.yaml and kubeadm-v1.36.3-flags.env are byte for byte what
`kubeadm init phase kubelet-start --dry-run` (the kubeadm built from the same release) wrote for a
node with criSocket unix:///var/run/containerd/containerd.sock and kubeletExtraArgs node-ip.
"""

from __future__ import annotations

from dataclasses import fields
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
    from_dict,
    load_file,
    to_dict,
    verbosity,
)
from kubelet.config.model import ShutdownGracePeriodByPodPriority
from kubelet.config.upstream import FIELDS

FIXTURES = Path(__file__).parent / "fixtures"
KUBEADM_CONFIG = FIXTURES / "kubeadm-v1.36.3-config.yaml"
HEADER = {"apiVersion": API_VERSION, "kind": KIND}


def decode(**given: Any) -> tuple[KubeletConfiguration, list[str]]:
    notes: list[str] = []
    return from_dict({**HEADER, **given}, note=notes.append), notes


def test_the_kubeadm_file_loads_with_upstream_defaults_and_no_warnings() -> None:
    notes: list[str] = []
    c = load_file(KUBEADM_CONFIG, note=notes.append)
    assert notes == []  # every value kubeadm writes is a default or something pykubelet does
    # the many "0s" kubeadm writes are unset: upstream's SetDefaults_KubeletConfiguration
    assert c.sync_frequency == timedelta(minutes=1)
    assert c.file_check_frequency == timedelta(seconds=20)
    assert c.node_status_update_frequency == timedelta(seconds=10)
    assert c.node_status_report_frequency == timedelta(minutes=5)
    assert c.runtime_request_timeout == timedelta(minutes=2)
    assert c.image_minimum_gc_age == timedelta(minutes=2)
    assert c.volume_stats_agg_period == timedelta(minutes=1)
    assert c.eviction_pressure_transition_period == timedelta(minutes=5)
    assert c.authentication.webhook.cache_ttl == timedelta(minutes=2)
    assert c.authorization.webhook.cache_authorized_ttl == timedelta(minutes=5)
    assert c.authorization.webhook.cache_unauthorized_ttl == timedelta(seconds=30)
    assert c.shutdown_grace_period == timedelta(0)
    # what kubeadm sets on purpose
    assert c.cgroup_driver == "systemd" and c.rotate_certificates is True
    assert c.authentication.x509.client_ca_file == "/etc/kubernetes/pki/ca.crt"
    assert c.authentication.webhook.enabled and not c.authentication.anonymous.enabled
    assert c.authorization.mode == "Webhook"
    assert (c.cluster_dns, c.cluster_domain) == (("10.96.0.10",), "cluster.local")
    assert (c.healthz_bind_address, c.healthz_port) == ("127.0.0.1", 10248)
    assert c.static_pod_path == "/etc/kubernetes/manifests"
    assert c.container_runtime_endpoint == "unix:///var/run/containerd/containerd.sock"
    assert c.fail_swap_on is True and c.memory_swap.swap_behavior == ""
    assert verbosity(c) == 0


def test_the_kubeadm_file_survives_a_round_trip() -> None:
    c = load_file(KUBEADM_CONFIG)
    again = from_dict(yaml.safe_load(yaml.safe_dump(to_dict(c))))
    assert again == c
    assert to_dict(c)["logging"] == yaml.safe_load(KUBEADM_CONFIG.read_text())["logging"]


def test_every_upstream_v1beta1_field_is_known() -> None:
    """The field list of k8s.io/kubelet/config/v1beta1 KubeletConfiguration at v0.36.3."""
    upstream = {
        "enableServer", "staticPodPath", "podLogsDir", "syncFrequency", "fileCheckFrequency",
        "httpCheckFrequency", "staticPodURL", "staticPodURLHeader", "address", "port",
        "readOnlyPort", "tlsCertFile", "tlsPrivateKeyFile", "tlsCipherSuites",
        "tlsCurvePreferences", "tlsMinVersion", "rotateCertificates", "serverTLSBootstrap",
        "authentication", "authorization", "registryPullQPS", "registryBurst",
        "imagePullCredentialsVerificationPolicy", "preloadedImagesVerificationAllowlist",
        "eventRecordQPS", "eventBurst", "enableDebuggingHandlers", "enableContentionProfiling",
        "healthzPort", "healthzBindAddress", "oomScoreAdj", "clusterDomain", "clusterDNS",
        "streamingConnectionIdleTimeout", "nodeStatusUpdateFrequency",
        "nodeStatusReportFrequency", "nodeLeaseDurationSeconds", "imageMinimumGCAge",
        "imageMaximumGCAge", "imageGCHighThresholdPercent", "imageGCLowThresholdPercent",
        "volumeStatsAggPeriod", "kubeletCgroups", "systemCgroups", "cgroupRoot", "cgroupsPerQOS",
        "cgroupDriver", "cpuManagerPolicy", "singleProcessOOMKill", "cpuManagerPolicyOptions",
        "cpuManagerReconcilePeriod", "memoryManagerPolicy", "topologyManagerPolicy",
        "topologyManagerScope", "topologyManagerPolicyOptions", "qosReserved",
        "runtimeRequestTimeout", "hairpinMode", "maxPods", "podCIDR", "podPidsLimit",
        "resolvConf", "runOnce", "cpuCFSQuota", "cpuCFSQuotaPeriod", "nodeStatusMaxImages",
        "maxOpenFiles", "contentType", "kubeAPIQPS", "kubeAPIBurst", "serializeImagePulls",
        "maxParallelImagePulls", "evictionHard", "evictionSoft", "evictionSoftGracePeriod",
        "evictionPressureTransitionPeriod", "evictionMaxPodGracePeriod",
        "evictionMinimumReclaim", "mergeDefaultEvictionSettings", "podsPerCore",
        "enableControllerAttachDetach", "protectKernelDefaults", "makeIPTablesUtilChains",
        "iptablesMasqueradeBit", "iptablesDropBit", "featureGates", "failSwapOn", "memorySwap",
        "containerLogMaxSize", "containerLogMaxFiles", "containerLogMaxWorkers",
        "containerLogMonitorInterval", "configMapAndSecretChangeDetectionStrategy",
        "systemReserved", "kubeReserved", "reservedSystemCPUs", "showHiddenMetricsForVersion",
        "systemReservedCgroup", "kubeReservedCgroup", "enforceNodeAllocatable",
        "allowedUnsafeSysctls", "volumePluginDir", "providerID", "kernelMemcgNotification",
        "logging", "enableSystemLogHandler", "enableSystemLogQuery", "shutdownGracePeriod",
        "shutdownGracePeriodCriticalPods", "shutdownGracePeriodByPodPriority",
        "crashLoopBackOff", "reservedMemory", "enableProfilingHandler",
        "enableDebugFlagsHandler", "seccompDefault", "memoryThrottlingFactor",
        "memoryReservationPolicy", "registerWithTaints", "registerNode", "tracing",
        "localStorageCapacityIsolation", "containerRuntimeEndpoint", "imageServiceEndpoint",
        "failCgroupV1", "userNamespaces",
    }  # fmt: skip
    implemented = {f.metadata["yaml"] for f in fields(KubeletConfiguration) if f.metadata}
    known = implemented | set(FIELDS) | {"featureGates"}
    assert upstream - known == set()
    assert known - upstream == {"nodeLabels"}  # pykubelet's own stand-in for --node-labels


@pytest.mark.parametrize(
    ("fields", "warning"),
    [
        ({"cpuManagerPolicy": "static"}, "KubeletConfiguration.cpuManagerPolicy: 'static' is"),
        ({"podsPerCore": 10}, "KubeletConfiguration.podsPerCore: 10 is not implemented"),
        ({"cpuCFSQuota": False}, "KubeletConfiguration.cpuCFSQuota: False is not implemented"),
        (
            {"logging": {"format": "json"}},
            "KubeletConfiguration.logging.format: 'json' is not implemented",
        ),
        (
            {"crashLoopBackOff": {"maxContainerRestartPeriod": "30s"}},
            "KubeletConfiguration.crashLoopBackOff.maxContainerRestartPeriod: '30s' is not",
        ),
        (
            {"featureGates": {"NodeSwap": True}},
            "KubeletConfiguration.featureGates[NodeSwap]: true: pykubelet has no feature gates",
        ),
        ({"fooBar": 1}, 'KubeletConfiguration: unknown field "fooBar"; ignored'),
        (
            {"authentication": {"webhook": {"cacheTtl": "1s"}}},
            'KubeletConfiguration.authentication.webhook: unknown field "cacheTtl"; ignored',
        ),
        (
            {"registerWithTaints": [{"key": "a", "effect": "NoSchedule", "timeAdded": "x"}]},
            'KubeletConfiguration.registerWithTaints[0]: unknown field "timeAdded"; ignored',
        ),
        (
            {"logging": {"verbose": 3}},
            'KubeletConfiguration.logging: unknown field "verbose"; ignored',
        ),
        ({"podLogsDirectory": "/x"}, 'KubeletConfiguration: unknown field "podLogsDirectory"'),
    ],
)
def test_unimplemented_and_unknown_fields_are_one_warning_each(
    fields: dict[str, Any], warning: str
) -> None:
    _, notes = decode(**fields)
    assert len(notes) == 1 and notes[0].startswith(warning), notes


@pytest.mark.parametrize(
    "fields",
    [
        {"enableProfilingHandler": False},  # not served anyway
        {"tlsMinVersion": "VersionTLS12"},  # Python's ssl never offers less here
        {"oomScoreAdj": -999},
        {"logging": {"verbosity": 5, "flushFrequency": "5s", "options": {"text": {}}}},
        {"featureGates": {}},
        {"cpuManagerPolicy": "none", "topologyManagerPolicy": "none", "memoryManagerPolicy": ""},
        {"tracing": {"endpoint": ""}, "reservedMemory": [], "qosReserved": {}},
    ],
)
def test_defaults_and_what_pykubelet_does_anyway_are_quiet(fields: dict[str, Any]) -> None:
    c, notes = decode(**fields)
    assert notes == []
    assert dict(c.upstream_only) == fields


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"enableServer": False}, "KubeletConfiguration.enableServer: False is not implemented"),
        ({"seccompDefault": True}, "pods without a seccomp profile would run unconfined"),
        ({"tlsMinVersion": "VersionTLS13"}, "would still accept TLS 1.2"),
        ({"tlsCipherSuites": ["TLS_AES_128_GCM_SHA256"]}, "cipher suites outside the list"),
        ({"runOnce": True}, "would keep running instead of exiting"),
        ({"imagePullCredentialsVerificationPolicy": "AlwaysVerify"}, "behaves as NeverVerify"),
        ({"podsPerCore": "ten"}, "KubeletConfiguration.podsPerCore: expected an integer"),
        ({"logging": {"flushFrequency": "soon"}}, "logging.flushFrequency: invalid duration"),
        ({"featureGates": {"X": "on"}}, "KubeletConfiguration.featureGates[X]: expected a bool"),
        ({"memorySwap": {"swapBehavior": "Unlimited"}}, 'swapBehavior: unsupported value "Un'),
        (
            {
                "shutdownGracePeriod": "30s",
                "shutdownGracePeriodByPodPriority": [
                    {"priority": 0, "shutdownGracePeriodSeconds": 10}
                ],
            },
            "KubeletConfiguration.shutdownGracePeriodByPodPriority: cannot be set together",
        ),
    ],
)
def test_unsafe_or_malformed_values_are_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(**fields)
    assert message in str(info.value)


def test_implemented_newer_fields() -> None:
    c, notes = decode(
        failSwapOn=False,
        memorySwap={"swapBehavior": "LimitedSwap"},
        podLogsDir="/srv/logs",
        shutdownGracePeriodByPodPriority=[
            {"priority": 100000, "shutdownGracePeriodSeconds": 30},
            {"priority": 0, "shutdownGracePeriodSeconds": 10},
        ],
    )
    assert notes == []
    assert c.fail_swap_on is False and c.memory_swap.swap_behavior == "LimitedSwap"
    assert c.pod_logs_dir == "/srv/logs"
    assert c.shutdown_grace_period_by_pod_priority == (
        ShutdownGracePeriodByPodPriority(100000, 30),
        ShutdownGracePeriodByPodPriority(0, 10),
    )


def test_merge_default_eviction_settings_keeps_the_other_defaults() -> None:
    c, _ = decode(evictionHard={"memory.available": "1Gi"}, mergeDefaultEvictionSettings=True)
    assert dict(c.eviction_hard) == {
        "memory.available": "1Gi",
        "nodefs.available": "10%",
        "imagefs.available": "15%",
        "nodefs.inodesFree": "5%",
    }
    c, _ = decode(evictionHard={"memory.available": "1Gi"})
    assert dict(c.eviction_hard) == {"memory.available": "1Gi"}
    c, _ = decode(evictionHard={})
    assert dict(c.eviction_hard) == {}  # set but empty: no hard eviction, as upstream


def test_logging_verbosity_is_the_level_the_file_asks_for() -> None:
    assert verbosity(decode(logging={"verbosity": 4})[0]) == 4
    assert verbosity(decode()[0]) == 0
