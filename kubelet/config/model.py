"""The KubeletConfiguration (kubelet.config.k8s.io/v1beta1) fields pykubelet implements, as frozen
dataclasses with upstream YAML names, codecs and defaults (the fields it reads but does not act on
are declared in upstream.py). Declarations only: no I/O, no parsing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kubelet.config.errors import ConfigError
from kubelet.config.labels import (
    Taint,
    check_cidr,
    check_dns_subdomain,
    check_endpoint,
    check_ip,
    check_kubelet_label,
    check_label_key,
    check_label_value,
    check_taint,
)
from kubelet.config.schema import (
    Bool,
    Check,
    Duration,
    Int,
    ListOf,
    MapOf,
    Optional,
    Quantity,
    Str,
    Struct,
    frozen,
    spec,
    type_name,
    unknown_key,
)

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"
DEFAULT_RUNTIME_ENDPOINT = "unix:///run/containerd/containerd.sock"

EVICTION_SIGNALS = (
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "allocatableMemory.available",
    "pid.available",
)
ENFORCE_OPTIONS = (
    "pods",
    "system-reserved",
    "kube-reserved",
    "system-reserved-compressible",
    "kube-reserved-compressible",
    "none",
)
_RESERVABLE = ("cpu", "memory", "ephemeral-storage", "pid")
_HUGEPAGES = re.compile(r"hugepages-(\d+(Ki|Mi|Gi))")


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def _unless_empty(check: Check) -> Check:
    return lambda text: check(text) if text else None


def _check_signal(name: str) -> None:
    if name not in EVICTION_SIGNALS:
        raise ValueError(f'unknown signal "{name}"')


def _check_reserved(name: str) -> None:
    if name not in _RESERVABLE and not _HUGEPAGES.fullmatch(name):
        raise ValueError(
            f'unknown resource "{name}": '
            f"must be one of {', '.join(_RESERVABLE)} or hugepages-<size>"
        )


def _check_node_label_key(key: str) -> None:
    check_label_key(key)
    check_kubelet_label(key)


def _check_cluster_domain(text: str) -> None:
    if text:
        check_dns_subdomain(text.removesuffix("."))


_NAMESPACED_SYSCTLS = ("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.", "net.")


def _check_sysctl_pattern(text: str) -> None:
    """allowedUnsafeSysctls entries: a name or prefix + '*' in a namespaced group, as upstream
    (a node-wide sysctl would change the host for every pod)."""
    name = text.replace("/", ".") if "." not in text.split("/")[0] else text
    if not name.removesuffix("*").startswith(_NAMESPACED_SYSCTLS):
        raise ValueError(f'the sysctls "{text}" are not known to be namespaced')


class _TaintCodec:
    """core/v1 Taint in YAML: {key, value, effect}; other keys (timeAdded is the controller's)
    are unknown fields."""

    def decode(self, raw: object, path: str) -> Taint:
        if not isinstance(raw, dict):
            raise ConfigError(path, f"expected a mapping, got {type_name(raw)} {raw!r}")
        for key in raw:
            if key not in ("key", "value", "effect"):
                unknown_key(path, key)
        parts = {k: Str().decode(raw.get(k, ""), f"{path}.{k}") for k in ("key", "value", "effect")}
        taint = Taint(**parts)
        try:
            check_taint(taint)
        except ValueError as e:
            raise ConfigError(path, str(e)) from None
        return taint

    def encode(self, value: Any) -> object:
        assert isinstance(value, Taint)
        return {"key": value.key, "value": value.value, "effect": value.effect}


_THRESHOLDS = MapOf(Quantity(percent=True), key_check=_check_signal)
DEFAULT_EVICTION_HARD = {
    "memory.available": "100Mi",
    "nodefs.available": "10%",
    "imagefs.available": "15%",
    "nodefs.inodesFree": "5%",
}
"""Upstream's Linux hard eviction thresholds, used when evictionHard is not set."""
SWAP_BEHAVIORS = ("", "NoSwap", "LimitedSwap")


@dataclass(frozen=True)
class MemorySwap:
    """memorySwap: how containers may use the node's swap."""

    swap_behavior: str = field(
        default="", metadata=spec("swapBehavior", Str(choices=SWAP_BEHAVIORS))
    )
    """"" or NoSwap: no swap for workloads; LimitedSwap: swap in proportion to memory requests
    (cgroup v2 only)."""


@dataclass(frozen=True)
class ShutdownGracePeriodByPodPriority:
    """One step of shutdownGracePeriodByPodPriority."""

    priority: int = field(metadata=spec("priority", Int()))
    """Pods with at least this priority (and below the next step's) get this grace period."""
    shutdown_grace_period_seconds: int = field(metadata=spec("shutdownGracePeriodSeconds", Int(0)))
    """Seconds these pods get to stop when the node shuts down."""


@dataclass(frozen=True)
class X509Authentication:
    """Client-certificate authentication of requests to the kubelet's API."""

    client_ca_file: str = field(default="", metadata=spec("clientCAFile", Str()))
    """CA bundle that signs client certificates; empty disables x509 authentication."""


@dataclass(frozen=True)
class WebhookAuthentication:
    """Bearer-token authentication through the apiserver's TokenReview API."""

    enabled: bool = field(default=True, metadata=spec("enabled", Bool()))
    """Authenticate bearer tokens with TokenReview (upstream v1beta1 default: true)."""
    cache_ttl: timedelta = field(
        default=timedelta(minutes=2), metadata=spec("cacheTTL", Duration(), omitzero=True)
    )
    """How long TokenReview answers are cached."""


@dataclass(frozen=True)
class AnonymousAuthentication:
    """Requests with no credentials."""

    enabled: bool = field(default=False, metadata=spec("enabled", Bool()))
    """Let unauthenticated requests through as system:anonymous (pykubelet default: false)."""


@dataclass(frozen=True)
class Authentication:
    """How the kubelet's API (:10250) authenticates callers."""

    x509: X509Authentication = field(
        default=X509Authentication(), metadata=spec("x509", Struct(X509Authentication))
    )
    """Client-certificate authentication."""
    webhook: WebhookAuthentication = field(
        default=WebhookAuthentication(), metadata=spec("webhook", Struct(WebhookAuthentication))
    )
    """TokenReview bearer-token authentication."""
    anonymous: AnonymousAuthentication = field(
        default=AnonymousAuthentication(),
        metadata=spec("anonymous", Struct(AnonymousAuthentication)),
    )
    """Anonymous requests."""


@dataclass(frozen=True)
class WebhookAuthorization:
    """Caching of SubjectAccessReview answers."""

    cache_authorized_ttl: timedelta = field(
        default=timedelta(minutes=5), metadata=spec("cacheAuthorizedTTL", Duration(), omitzero=True)
    )
    """How long an "allowed" answer is cached."""
    cache_unauthorized_ttl: timedelta = field(
        default=timedelta(seconds=30),
        metadata=spec("cacheUnauthorizedTTL", Duration(), omitzero=True),
    )
    """How long a "denied" answer is cached."""


@dataclass(frozen=True)
class Authorization:
    """How the kubelet's API authorises authenticated callers."""

    mode: str = field(
        default="Webhook",
        metadata=spec("mode", Str(choices=("AlwaysAllow", "Webhook")), omitzero=True),
    )
    """AlwaysAllow, or Webhook (ask the apiserver with SubjectAccessReview)."""
    webhook: WebhookAuthorization = field(
        default=WebhookAuthorization(), metadata=spec("webhook", Struct(WebhookAuthorization))
    )
    """SubjectAccessReview answer caching."""


@dataclass(frozen=True)
class KubeletConfiguration:
    """The node agent's settings (kubelet.config.k8s.io/v1beta1 KubeletConfiguration subset).

    Attribute names are the upstream YAML names in snake_case; durations are timedeltas,
    quantities stay strings (checked), lists are tuples and maps read-only mappings."""

    # --- serving ---
    address: str = field(default="0.0.0.0", metadata=spec("address", Str(check_ip), omitzero=True))
    """IP address the kubelet API (:port) listens on; 0.0.0.0 means all IPv4 interfaces."""
    port: int = field(default=10250, metadata=spec("port", Int(0, 65535), omitzero=True))
    """Port of the authenticated kubelet API."""
    read_only_port: int = field(default=0, metadata=spec("readOnlyPort", Int(0, 65535)))
    """Port of the unauthenticated read-only API; 0 disables it."""
    healthz_bind_address: str = field(
        default="127.0.0.1", metadata=spec("healthzBindAddress", Str(check_ip), omitzero=True)
    )
    """IP address of the /healthz server."""
    healthz_port: int = field(default=10248, metadata=spec("healthzPort", Int(0, 65535)))
    """Port of the /healthz server; 0 disables it."""
    enable_debugging_handlers: bool = field(
        default=True, metadata=spec("enableDebuggingHandlers", Bool())
    )
    """Serve logs, exec, attach, port-forward and run on the kubelet API."""
    tls_cert_file: str = field(default="", metadata=spec("tlsCertFile", Str()))
    """Serving certificate of the kubelet API; empty means self-signed or bootstrapped."""
    tls_private_key_file: str = field(default="", metadata=spec("tlsPrivateKeyFile", Str()))
    """Private key matching tlsCertFile."""
    server_tls_bootstrap: bool = field(default=False, metadata=spec("serverTLSBootstrap", Bool()))
    """Request the serving certificate from the apiserver (a CSR) instead of self-signing."""
    rotate_certificates: bool = field(default=False, metadata=spec("rotateCertificates", Bool()))
    """Renew the client certificate through CSRs as it nears expiry."""
    authentication: Authentication = field(
        default=Authentication(), metadata=spec("authentication", Struct(Authentication))
    )
    """How callers of the kubelet API are authenticated."""
    authorization: Authorization = field(
        default=Authorization(), metadata=spec("authorization", Struct(Authorization))
    )
    """How callers of the kubelet API are authorised."""

    # --- pods and their sources ---
    static_pod_path: str = field(default="", metadata=spec("staticPodPath", Str()))
    """Directory (or file) of static pod manifests; empty disables static pods."""
    pod_logs_dir: str = field(
        default="/var/log/pods", metadata=spec("podLogsDir", Str(), omitzero=True)
    )
    """Where container logs are written: <dir>/<namespace>_<name>_<uid>/<container>/<n>.log."""
    sync_frequency: timedelta = field(
        default=timedelta(minutes=1), metadata=spec("syncFrequency", Duration(), omitzero=True)
    )
    """Longest time between periodic syncs of running pods and the configuration."""
    file_check_frequency: timedelta = field(
        default=_seconds(20), metadata=spec("fileCheckFrequency", Duration(), omitzero=True)
    )
    """How often the static pod path is re-read."""
    max_pods: int = field(default=110, metadata=spec("maxPods", Int(0), omitzero=True))
    """Most pods this node runs."""
    pod_pids_limit: int = field(default=-1, metadata=spec("podPidsLimit", Int(-1)))
    """Most processes per pod; -1 means no limit."""
    allowed_unsafe_sysctls: tuple[str, ...] = field(
        default=(), metadata=spec("allowedUnsafeSysctls", ListOf(Str(_check_sysctl_pattern)))
    )
    """Unsafe sysctls (names, or prefixes ending in '*') pods may set beyond the safe set."""
    pod_cidr: str = field(default="", metadata=spec("podCIDR", Str(_unless_empty(check_cidr))))
    """Pod IP range in standalone mode; with an apiserver the Node's spec.podCIDR wins."""
    resolv_conf: str = field(default="/etc/resolv.conf", metadata=spec("resolvConf", Str()))
    """Resolver file that pods with dnsPolicy Default copy; empty gives them none."""
    cluster_dns: tuple[str, ...] = field(
        default=(), metadata=spec("clusterDNS", ListOf(Str(check_ip)))
    )
    """Cluster DNS server IPs that pods with dnsPolicy ClusterFirst use."""
    cluster_domain: str = field(
        default="", metadata=spec("clusterDomain", Str(_check_cluster_domain))
    )
    """Cluster DNS domain (for example cluster.local) appended to pods' search paths."""
    hairpin_mode: str = field(
        default="promiscuous-bridge",
        metadata=spec(
            "hairpinMode",
            Str(choices=("promiscuous-bridge", "hairpin-veth", "none")),
            omitzero=True,
        ),
    )
    """How a pod can reach itself through a Service: promiscuous-bridge, hairpin-veth, none."""
    shutdown_grace_period: timedelta = field(
        default=timedelta(0), metadata=spec("shutdownGracePeriod", Duration())
    )
    """Time the node delays shutdown to stop pods; 0s disables graceful node shutdown."""
    shutdown_grace_period_critical_pods: timedelta = field(
        default=timedelta(0), metadata=spec("shutdownGracePeriodCriticalPods", Duration())
    )
    """Part of shutdownGracePeriod kept for critical pods, which stop last."""
    shutdown_grace_period_by_pod_priority: tuple[ShutdownGracePeriodByPodPriority, ...] = field(
        default=(),
        metadata=spec(
            "shutdownGracePeriodByPodPriority", ListOf(Struct(ShutdownGracePeriodByPodPriority))
        ),
    )
    """Grace periods by pod priority (instead of the two periods above)."""

    # --- node status and registration ---
    node_status_update_frequency: timedelta = field(
        default=_seconds(10), metadata=spec("nodeStatusUpdateFrequency", Duration(), omitzero=True)
    )
    """How often node status is computed, and written when it changed."""
    node_status_report_frequency: timedelta = field(
        default=timedelta(minutes=5),
        metadata=spec("nodeStatusReportFrequency", Duration(), omitzero=True),
    )
    """Longest time between status writes when nothing changed (defaults to
    nodeStatusUpdateFrequency when only that is set, as upstream)."""
    node_lease_duration_seconds: int = field(
        default=40, metadata=spec("nodeLeaseDurationSeconds", Int(0), omitzero=True)
    )
    """Duration of the node's Lease; it is renewed every quarter of it."""
    register_node: bool = field(default=True, metadata=spec("registerNode", Bool()))
    """Create the Node object in the apiserver."""
    register_with_taints: tuple[Taint, ...] = field(
        default=(), metadata=spec("registerWithTaints", ListOf(_TaintCodec()))
    )
    """Taints the Node is created with (only applied at registration)."""
    node_labels: Mapping[str, str] = field(
        default_factory=frozen({}),
        metadata=spec("nodeLabels", MapOf(Str(check_label_value), key_check=_check_node_label_key)),
    )
    """Labels the Node is registered with (pykubelet's stand-in for --node-labels)."""
    provider_id: str = field(default="", metadata=spec("providerID", Str()))
    """The Node's spec.providerID (the cloud's name of the machine)."""

    # --- container runtime and images ---
    container_runtime_endpoint: str = field(
        default=DEFAULT_RUNTIME_ENDPOINT,
        metadata=spec("containerRuntimeEndpoint", Str(check_endpoint), omitzero=True),
    )
    """CRI runtime service endpoint."""
    image_service_endpoint: str = field(
        default="", metadata=spec("imageServiceEndpoint", Str(_unless_empty(check_endpoint)))
    )
    """CRI image service endpoint; empty means containerRuntimeEndpoint."""
    runtime_request_timeout: timedelta = field(
        default=timedelta(minutes=2),
        metadata=spec("runtimeRequestTimeout", Duration(), omitzero=True),
    )
    """Timeout of CRI calls other than long-running ones (pull, logs, exec, attach)."""
    serialize_image_pulls: bool = field(default=True, metadata=spec("serializeImagePulls", Bool()))
    """Pull one image at a time (defaults to false when maxParallelImagePulls > 1 is set)."""
    max_parallel_image_pulls: int | None = field(
        default=None, metadata=spec("maxParallelImagePulls", Optional(Int(1)))
    )
    """Most image pulls at once when pulls are not serialised; None means no limit."""
    image_minimum_gc_age: timedelta = field(
        default=timedelta(minutes=2), metadata=spec("imageMinimumGCAge", Duration(), omitzero=True)
    )
    """Youngest age at which an unused image may be garbage-collected."""
    image_gc_high_threshold_percent: int = field(
        default=85, metadata=spec("imageGCHighThresholdPercent", Int(0, 100))
    )
    """Image-disk usage (percent) above which image GC always runs; 100 disables image GC."""
    image_gc_low_threshold_percent: int = field(
        default=80, metadata=spec("imageGCLowThresholdPercent", Int(0, 100))
    )
    """Image-disk usage (percent) that image GC frees down to."""
    volume_stats_agg_period: timedelta = field(
        default=timedelta(minutes=1),
        metadata=spec("volumeStatsAggPeriod", Duration(), omitzero=True),
    )
    """How often volume disk usage is measured."""
    container_log_max_size: str = field(
        default="10Mi", metadata=spec("containerLogMaxSize", Quantity(), omitzero=True)
    )
    """Size (quantity) at which a container's log file is rotated."""
    container_log_max_files: int = field(default=5, metadata=spec("containerLogMaxFiles", Int(2)))
    """Most log files kept per container, the live one included."""

    # --- cgroups and node resources ---
    cgroup_driver: str = field(
        default="cgroupfs",
        metadata=spec("cgroupDriver", Str(choices=("cgroupfs", "systemd")), omitzero=True),
    )
    """How cgroups are managed: cgroupfs (files) or systemd; must match the runtime's."""
    cgroup_root: str = field(default="", metadata=spec("cgroupRoot", Str()))
    """Parent cgroup of the pods' cgroups; empty means the root."""
    cgroups_per_qos: bool = field(default=True, metadata=spec("cgroupsPerQOS", Bool()))
    """Build the kubepods / burstable / besteffort QoS cgroup hierarchy."""
    fail_cgroup_v1: bool = field(default=False, metadata=spec("failCgroupV1", Bool()))
    """Refuse to start on a cgroup v1 host (pykubelet default: false, v1 is supported)."""
    fail_swap_on: bool = field(default=True, metadata=spec("failSwapOn", Bool()))
    """Refuse to start when swap is on (/proc/swaps lists a device or file)."""
    memory_swap: MemorySwap = field(
        default=MemorySwap(), metadata=spec("memorySwap", Struct(MemorySwap))
    )
    """Swap for workloads when failSwapOn is false."""
    kube_reserved: Mapping[str, str] = field(
        default_factory=frozen({}),
        metadata=spec("kubeReserved", MapOf(Quantity(), key_check=_check_reserved)),
    )
    """Resources (cpu, memory, ephemeral-storage, pid) set aside for Kubernetes daemons."""
    system_reserved: Mapping[str, str] = field(
        default_factory=frozen({}),
        metadata=spec("systemReserved", MapOf(Quantity(), key_check=_check_reserved)),
    )
    """Resources set aside for the operating system's daemons."""
    kube_reserved_cgroup: str = field(default="", metadata=spec("kubeReservedCgroup", Str()))
    """Cgroup of the Kubernetes daemons; needed to enforce kube-reserved."""
    system_reserved_cgroup: str = field(default="", metadata=spec("systemReservedCgroup", Str()))
    """Cgroup of the system daemons; needed to enforce system-reserved."""
    enforce_node_allocatable: tuple[str, ...] = field(
        default=("pods",),
        metadata=spec("enforceNodeAllocatable", ListOf(Str(choices=ENFORCE_OPTIONS))),
    )
    """Which reservations are enforced with cgroup limits ("none" alone turns all off)."""

    # --- eviction ---
    eviction_hard: Mapping[str, str] = field(
        default_factory=frozen(DEFAULT_EVICTION_HARD), metadata=spec("evictionHard", _THRESHOLDS)
    )
    """Signal -> threshold (quantity or percent) that evicts pods at once; setting it replaces
    all the defaults unless mergeDefaultEvictionSettings is true."""
    merge_default_eviction_settings: bool = field(
        default=False, metadata=spec("mergeDefaultEvictionSettings", Bool())
    )
    """Keep the default evictionHard thresholds for signals the file does not name."""
    eviction_soft: Mapping[str, str] = field(
        default_factory=frozen({}), metadata=spec("evictionSoft", _THRESHOLDS)
    )
    """Signal -> threshold that evicts pods once held for the signal's grace period."""
    eviction_soft_grace_period: Mapping[str, timedelta] = field(
        default_factory=frozen({}),
        metadata=spec("evictionSoftGracePeriod", MapOf(Duration(), key_check=_check_signal)),
    )
    """Signal -> how long a soft threshold must be crossed before eviction."""
    eviction_pressure_transition_period: timedelta = field(
        default=timedelta(minutes=5),
        metadata=spec("evictionPressureTransitionPeriod", Duration(), omitzero=True),
    )
    """How long a pressure condition stays after its signal last crossed a threshold."""
    eviction_minimum_reclaim: Mapping[str, str] = field(
        default_factory=frozen({}), metadata=spec("evictionMinimumReclaim", _THRESHOLDS)
    )
    """Signal -> how much beyond the threshold an eviction frees."""
    eviction_max_pod_grace_period: int = field(
        default=0, metadata=spec("evictionMaxPodGracePeriod", Int(0))
    )
    """Longest grace period (seconds) a pod evicted for a soft threshold is stopped with; the
    pod's own terminationGracePeriodSeconds when shorter. Hard evictions stop pods at once."""

    # --- read but not acted on (upstream.py) ---
    upstream_only: Mapping[str, object] = field(default_factory=frozen({}))
    """The upstream fields pykubelet does not implement, as given (YAML values), so that the
    YAML form carries them through drop-in merges; see upstream.FIELDS."""
