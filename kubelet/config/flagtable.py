"""Every flag of the upstream kubelet v1.36 command line (cmd/kubelet/app/options and its global
flags), declared once: its value kind and where it lands (a KubeletConfiguration field, a RunConfig
setting, or nowhere: a warning). Declarations only; flags.py parses and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "str",
    "bool",
    "int",
    "float",
    "duration",
    "list",  # comma-separated, repeatable (pflag StringSlice)
    "map",  # k=v,k2=v2, repeatable (MapStringString; ConfigurationMap for --node-labels)
    "map-nosplit",  # k=v, one pair per use (MapStringStringNoSplit)
    "langle-map",  # signal<quantity,... (LangleSeparatedMapStringString)
    "bool-map",  # Gate=true,... (MapStringBool)
    "colon-multimap",  # name:value,... (ColonSeparatedMultimapStringString)
    "taints",  # key=value:Effect,...
    "reserved-memory",  # numa:resource=quantity,... repeatable
]
REPEATABLE: frozenset[Kind] = frozenset(
    {"list", "map", "map-nosplit", "langle-map", "bool-map", "colon-multimap", "reserved-memory"}
)


@dataclass(frozen=True)
class Flag:
    """One upstream kubelet flag."""

    name: str
    """The flag's name without dashes (underscores are normalised to '-' when parsing)."""
    kind: Kind
    field: tuple[str, ...] = ()
    """Where the value goes in the KubeletConfiguration (YAML keys), overriding the files."""
    run: str = ""
    """Or: the RunConfig setting it fills (a flag with no config field)."""
    default: str = ""
    """For flags that go nowhere: the value that needs no warning (upstream's default)."""
    short: str = ""
    """A one-letter alias (-v)."""

    @property
    def dest(self) -> str:
        """The argparse attribute the raw value is stored under."""
        return self.run or "flag_" + self.name.replace("-", "_")


def _c(name: str, kind: Kind, path: str) -> Flag:
    return Flag(name, kind, field=tuple(path.split(".")))


def _r(name: str, kind: Kind, run: str, short: str = "") -> Flag:
    return Flag(name, kind, run=run, short=short)


def _x(name: str, kind: Kind = "str", default: str = "") -> Flag:
    return Flag(name, kind, default=default)


# KubeletFlags (no KubeletConfiguration field). --node-labels is merged over nodeLabels.
_COMMAND: tuple[Flag, ...] = (
    _r("config", "str", "config"),
    _r("config-dir", "str", "config_dir"),
    _r("kubeconfig", "str", "kubeconfig"),
    _r("bootstrap-kubeconfig", "str", "bootstrap_kubeconfig"),
    _r("hostname-override", "str", "hostname_override"),
    _r("node-ip", "str", "node_ip"),
    _r("cert-dir", "str", "cert_dir"),
    _r("root-dir", "str", "root_dir"),
    _r("node-labels", "map", "node_labels"),
    _r("v", "int", "verbosity", short="v"),
    _r("version", "bool", "version"),
    _c("seccomp-default", "bool", "seccompDefault"),
    _x("cloud-provider"),
    _x("lock-file"),
    _x("exit-on-lock-contention", "bool", "false"),
    _x("runtime-cgroups"),
    _x("image-credential-provider-config"),
    _x("image-credential-provider-bin-dir"),
    _x("minimum-container-ttl-duration", "duration", "0s"),
    _x("maximum-dead-containers-per-container", "int", "1"),
    _x("maximum-dead-containers", "int", "-1"),
    _x("experimental-mounter-path"),
    _x("experimental-allocatable-ignore-eviction", "bool", "false"),
    # removed from the kubelet in v1.35, still written by older kubeadm-flags.env files
    _x("pod-infra-container-image"),
)

# KubeletConfiguration fields (AddKubeletConfigFlags); they override --config and drop-ins.
_CONFIG: tuple[Flag, ...] = (
    _c("enable-server", "bool", "enableServer"),
    _c("fail-swap-on", "bool", "failSwapOn"),
    _c("pod-manifest-path", "str", "staticPodPath"),
    _c("sync-frequency", "duration", "syncFrequency"),
    _c("file-check-frequency", "duration", "fileCheckFrequency"),
    _c("http-check-frequency", "duration", "httpCheckFrequency"),
    _c("manifest-url", "str", "staticPodURL"),
    _c("manifest-url-header", "colon-multimap", "staticPodURLHeader"),
    _c("address", "str", "address"),
    _c("port", "int", "port"),
    _c("read-only-port", "int", "readOnlyPort"),
    _c("fail-cgroupv1", "bool", "failCgroupV1"),
    _c("container-runtime-endpoint", "str", "containerRuntimeEndpoint"),
    _c("image-service-endpoint", "str", "imageServiceEndpoint"),
    _c("anonymous-auth", "bool", "authentication.anonymous.enabled"),
    _c("authentication-token-webhook", "bool", "authentication.webhook.enabled"),
    _c("authentication-token-webhook-cache-ttl", "duration", "authentication.webhook.cacheTTL"),
    _c("client-ca-file", "str", "authentication.x509.clientCAFile"),
    _c("authorization-mode", "str", "authorization.mode"),
    _c(
        "authorization-webhook-cache-authorized-ttl",
        "duration",
        "authorization.webhook.cacheAuthorizedTTL",
    ),
    _c(
        "authorization-webhook-cache-unauthorized-ttl",
        "duration",
        "authorization.webhook.cacheUnauthorizedTTL",
    ),
    _c("tls-cert-file", "str", "tlsCertFile"),
    _c("tls-private-key-file", "str", "tlsPrivateKeyFile"),
    _c("rotate-server-certificates", "bool", "serverTLSBootstrap"),
    _c("tls-cipher-suites", "list", "tlsCipherSuites"),
    _c("tls-min-version", "str", "tlsMinVersion"),
    _c("rotate-certificates", "bool", "rotateCertificates"),
    _c("registry-qps", "int", "registryPullQPS"),
    _c("registry-burst", "int", "registryBurst"),
    _c("event-qps", "int", "eventRecordQPS"),
    _c("event-burst", "int", "eventBurst"),
    _c("enable-debugging-handlers", "bool", "enableDebuggingHandlers"),
    _c("contention-profiling", "bool", "enableContentionProfiling"),
    _c("healthz-port", "int", "healthzPort"),
    _c("healthz-bind-address", "str", "healthzBindAddress"),
    _c("oom-score-adj", "int", "oomScoreAdj"),
    _c("cluster-domain", "str", "clusterDomain"),
    _c("volume-plugin-dir", "str", "volumePluginDir"),
    _c("cluster-dns", "list", "clusterDNS"),
    _c("streaming-connection-idle-timeout", "duration", "streamingConnectionIdleTimeout"),
    _c("node-status-update-frequency", "duration", "nodeStatusUpdateFrequency"),
    _c("minimum-image-ttl-duration", "duration", "imageMinimumGCAge"),
    _c("image-gc-high-threshold", "int", "imageGCHighThresholdPercent"),
    _c("image-gc-low-threshold", "int", "imageGCLowThresholdPercent"),
    _c("volume-stats-agg-period", "duration", "volumeStatsAggPeriod"),
    _c("feature-gates", "bool-map", "featureGates"),
    _c("kubelet-cgroups", "str", "kubeletCgroups"),
    _c("system-cgroups", "str", "systemCgroups"),
    _c("provider-id", "str", "providerID"),
    _c("cgroups-per-qos", "bool", "cgroupsPerQOS"),
    _c("cgroup-driver", "str", "cgroupDriver"),
    _c("cgroup-root", "str", "cgroupRoot"),
    _c("cpu-manager-policy", "str", "cpuManagerPolicy"),
    _c("cpu-manager-policy-options", "map-nosplit", "cpuManagerPolicyOptions"),
    _c("cpu-manager-reconcile-period", "duration", "cpuManagerReconcilePeriod"),
    _c("qos-reserved", "map", "qosReserved"),
    _c("topology-manager-policy", "str", "topologyManagerPolicy"),
    _c("runtime-request-timeout", "duration", "runtimeRequestTimeout"),
    _c("hairpin-mode", "str", "hairpinMode"),
    _c("max-pods", "int", "maxPods"),
    _c("pod-cidr", "str", "podCIDR"),
    _c("pod-max-pids", "int", "podPidsLimit"),
    _c("resolv-conf", "str", "resolvConf"),
    _c("runonce", "bool", "runOnce"),
    _c("cpu-cfs-quota", "bool", "cpuCFSQuota"),
    _c("cpu-cfs-quota-period", "duration", "cpuCFSQuotaPeriod"),
    _c("enable-controller-attach-detach", "bool", "enableControllerAttachDetach"),
    _c("make-iptables-util-chains", "bool", "makeIPTablesUtilChains"),
    _c("container-log-max-size", "str", "containerLogMaxSize"),
    _c("container-log-max-files", "int", "containerLogMaxFiles"),
    _c("allowed-unsafe-sysctls", "list", "allowedUnsafeSysctls"),
    _c("node-status-max-images", "int", "nodeStatusMaxImages"),
    _c("kernel-memcg-notification", "bool", "kernelMemcgNotification"),
    _c("local-storage-capacity-isolation", "bool", "localStorageCapacityIsolation"),
    _c("max-open-files", "int", "maxOpenFiles"),
    _c("kube-api-content-type", "str", "contentType"),
    _c("kube-api-qps", "int", "kubeAPIQPS"),
    _c("kube-api-burst", "int", "kubeAPIBurst"),
    _c("serialize-image-pulls", "bool", "serializeImagePulls"),
    _c("eviction-hard", "langle-map", "evictionHard"),
    _c("eviction-soft", "langle-map", "evictionSoft"),
    _c("eviction-soft-grace-period", "map", "evictionSoftGracePeriod"),
    _c("eviction-pressure-transition-period", "duration", "evictionPressureTransitionPeriod"),
    _c("eviction-max-pod-grace-period", "int", "evictionMaxPodGracePeriod"),
    _c("eviction-minimum-reclaim", "map", "evictionMinimumReclaim"),
    _c("pods-per-core", "int", "podsPerCore"),
    _c("protect-kernel-defaults", "bool", "protectKernelDefaults"),
    _c("reserved-cpus", "str", "reservedSystemCPUs"),
    _c("topology-manager-scope", "str", "topologyManagerScope"),
    _c("topology-manager-policy-options", "map", "topologyManagerPolicyOptions"),
    _c("system-reserved", "map", "systemReserved"),
    _c("kube-reserved", "map", "kubeReserved"),
    _c("enforce-node-allocatable", "list", "enforceNodeAllocatable"),
    _c("system-reserved-cgroup", "str", "systemReservedCgroup"),
    _c("kube-reserved-cgroup", "str", "kubeReservedCgroup"),
    _c("memory-manager-policy", "str", "memoryManagerPolicy"),
    _c("reserved-memory", "reserved-memory", "reservedMemory"),
    _c("register-node", "bool", "registerNode"),
    _c("register-with-taints", "taints", "registerWithTaints"),
    # logging (logsapi.AddFlags): -v is above; the rest map onto `logging`
    _c("logging-format", "str", "logging.format"),
    _c("log-flush-frequency", "duration", "logging.flushFrequency"),
    _c("vmodule", "list", "logging.vmodule"),
    _c("log-json-info-buffer-size", "str", "logging.options.json.infoBufferSize"),
    _c("log-json-split-stream", "bool", "logging.options.json.splitStream"),
    _c("log-text-info-buffer-size", "str", "logging.options.text.infoBufferSize"),
    _c("log-text-split-stream", "bool", "logging.options.text.splitStream"),
)

# cAdvisor's flags the kubelet still registers (globalflags_linux.go); pykubelet has no cAdvisor.
_CADVISOR: tuple[Flag, ...] = (
    _x("housekeeping-interval", "duration", "10s"),
    _x("application-metrics-count-limit", "int", "100"),
    _x("boot-id-file", default="/proc/sys/kernel/random/boot_id"),
    _x("container-hints", default="/etc/cadvisor/container_hints.json"),
    _x("containerd", default="/run/containerd/containerd.sock"),
    _x("containerd-namespace", default="k8s.io"),
    _x("enable-load-reader", "bool", "false"),
    _x("event-storage-age-limit", default="default=0"),
    _x("event-storage-event-limit", default="default=0"),
    _x("global-housekeeping-interval", "duration", "1m0s"),
    _x("log-cadvisor-usage", "bool", "false"),
    _x("machine-id-file", default="/etc/machine-id,/var/lib/dbus/machine-id"),
    _x("storage-driver-user", default="root"),
    _x("storage-driver-password", default="root"),
    _x("storage-driver-host", default="localhost:8086"),
    _x("storage-driver-db", default="cadvisor"),
    _x("storage-driver-table", default="stats"),
    _x("storage-driver-secure", "bool", "false"),
    _x("storage-driver-buffer-duration", "duration", "1m0s"),
)

FLAGS: tuple[Flag, ...] = (*_COMMAND, *_CONFIG, *_CADVISOR)
BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}
