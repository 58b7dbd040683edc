"""Reading a KubeletConfiguration file: YAML to checked dataclasses, upstream defaulting quirks,
cross-field validation, and the YAML form back. Reads only the one file it is given.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from kubelet.config.errors import ConfigError
from kubelet.config.model import API_VERSION, KIND, KubeletConfiguration
from kubelet.config.schema import decode_fields, encode_fields, type_name

# Upstream v1beta1 fields pykubelet does not implement: named as such rather than "unknown".
_UPSTREAM_ONLY = frozenset(
    [
        "enableServer",
        "staticPodURL",
        "staticPodURLHeader",
        "tlsCipherSuites",
        "tlsMinVersion",
        "registryPullQPS",
        "registryBurst",
        "eventRecordQPS",
        "eventBurst",
        "enableContentionProfiling",
        "streamingConnectionIdleTimeout",
        "nodeStatusMaxImages",
        "imageMaximumGCAge",
        "cpuManagerPolicy",
        "cpuManagerPolicyOptions",
        "cpuManagerReconcilePeriod",
        "memoryManagerPolicy",
        "topologyManagerPolicy",
        "topologyManagerScope",
        "topologyManagerPolicyOptions",
        "qosReserved",
        "podsPerCore",
        "enableControllerAttachDetach",
        "protectKernelDefaults",
        "makeIPTablesUtilChains",
        "iptablesMasqueradeBit",
        "iptablesDropBit",
        "featureGates",
        "failSwapOn",
        "memorySwap",
        "containerLogMaxWorkers",
        "containerLogMonitorInterval",
        "configMapAndSecretChangeDetectionStrategy",
        "systemCgroups",
        "kubeletCgroups",
        "volumePluginDir",
        "kernelMemcgNotification",
        "logging",
        "enableSystemLogHandler",
        "enableSystemLogQuery",
        "shutdownGracePeriodByPodPriority",
        "reservedMemory",
        "enableProfilingHandler",
        "seccompDefault",
        "memoryThrottlingFactor",
        "localStorageCapacityIsolation",
        "podLogsDir",
        "crashLoopBackOff",
        "userNamespaces",
        "singleProcessOOMKill",
        "imagePullCredentialsVerificationPolicy",
        "preloadedImagesVerificationAllowlist",
        "mergeDefaultEvictionSettings",
        "reservedSystemCPUs",
        "showHiddenMetricsForVersion",
        "oomScoreAdj",
        "enableDebugFlagsHandler",
        "maxOpenFiles",
        "cpuCFSQuota",
        "cpuCFSQuotaPeriod",
        "kubeAPIQPS",
        "kubeAPIBurst",
        "contentType",
    ]
)
# Settings holding paths that upstream resolves against the config file's directory.
_PATH_FIELDS = ("static_pod_path", "tls_cert_file", "tls_private_key_file", "resolv_conf")


def _check_header(data: dict[Any, Any]) -> None:
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        got = data.get(key)
        if got is None:
            raise ConfigError(KIND, f'missing "{key}": want "{want}"')
        if got != want:
            raise ConfigError(f"{KIND}.{key}", f'unsupported value "{got}": want "{want}"')
    for key in data:
        if key in _UPSTREAM_ONLY:
            raise ConfigError(KIND, f'field "{key}" is not supported by pykubelet')


def _upstream_defaulting(kwargs: dict[str, Any]) -> None:
    """The two defaults that depend on other fields (upstream SetDefaults_KubeletConfiguration)."""
    if "node_status_report_frequency" not in kwargs and "node_status_update_frequency" in kwargs:
        kwargs["node_status_report_frequency"] = kwargs["node_status_update_frequency"]
    if "serialize_image_pulls" not in kwargs:
        parallel = kwargs.get("max_parallel_image_pulls")
        kwargs["serialize_image_pulls"] = parallel is None or parallel < 2


def from_dict(data: object) -> KubeletConfiguration:
    """Decode the parsed YAML of a KubeletConfiguration: check apiVersion and kind, refuse
    unknown fields and bad values, apply upstream defaults, then cross-check (validate)."""
    if not isinstance(data, dict):
        raise ConfigError(KIND, f"expected a mapping, got {type_name(data)}")
    _check_header(data)
    kwargs = decode_fields(KubeletConfiguration, data, KIND, ignore=("apiVersion", "kind"))
    _upstream_defaulting(kwargs)
    config = KubeletConfiguration(**kwargs)
    validate(config)
    return config


def to_dict(config: KubeletConfiguration) -> dict[str, object]:
    """The full YAML form (every field, upstream names, Go durations) that from_dict reads back."""
    return {"apiVersion": API_VERSION, "kind": KIND, **encode_fields(config)}


def _resolve_paths(config: KubeletConfiguration, base: Path) -> KubeletConfiguration:
    def resolve(value: str) -> str:
        return value if not value or os.path.isabs(value) else str(base / value)

    changes: dict[str, Any] = {name: resolve(getattr(config, name)) for name in _PATH_FIELDS}
    auth = config.authentication
    x509 = dataclasses.replace(auth.x509, client_ca_file=resolve(auth.x509.client_ca_file))
    changes["authentication"] = dataclasses.replace(auth, x509=x509)
    return dataclasses.replace(config, **changes)


def loads(text: str, *, source: str = KIND, base_dir: Path | None = None) -> KubeletConfiguration:
    """Decode a KubeletConfiguration from YAML text. `source` names it in YAML errors; relative
    paths in it are resolved against `base_dir` when given (upstream resolves them against the
    config file's directory)."""
    if not text.strip():
        raise ConfigError(source, "the kubelet config file is empty")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(source, f"invalid YAML: {e}") from None
    config = from_dict(data)
    return config if base_dir is None else _resolve_paths(config, base_dir)


def load_file(path: Path | str | None) -> KubeletConfiguration:
    """The configuration in `path`, or all defaults when `path` is None. A named file that is
    missing, unreadable or empty is an error naming the path."""
    if path is None:
        return KubeletConfiguration()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "kubelet config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), f"cannot read kubelet config file: {e}") from None
    return loads(text, source=str(path), base_dir=path.parent.absolute())


def _fail(field: str, message: str) -> None:
    raise ConfigError(f"{KIND}.{field}", message)


def _validate_eviction(config: KubeletConfiguration) -> None:
    for signal in config.eviction_soft:
        if config.eviction_soft_grace_period.get(signal, timedelta(0)) <= timedelta(0):
            _fail(
                "evictionSoftGracePeriod",
                f'soft threshold "{signal}" needs a grace period greater than 0s',
            )


def _validate_allocatable(config: KubeletConfiguration) -> None:
    enforce = config.enforce_node_allocatable
    if "none" in enforce and len(enforce) > 1:
        _fail("enforceNodeAllocatable", f'"none" cannot be combined with others: {list(enforce)}')
    for option, cgroup, name in (
        ("system-reserved", config.system_reserved_cgroup, "systemReservedCgroup"),
        ("kube-reserved", config.kube_reserved_cgroup, "kubeReservedCgroup"),
    ):
        wanted = option in enforce or f"{option}-compressible" in enforce
        if wanted and not cgroup:
            _fail("enforceNodeAllocatable", f'"{option}" is enforced but {name} is not set')


def validate(config: KubeletConfiguration) -> None:
    """Cross-field rules (upstream ValidateKubeletConfiguration, for the supported subset)."""
    if config.image_gc_low_threshold_percent >= config.image_gc_high_threshold_percent:
        _fail(
            "imageGCLowThresholdPercent",
            f"{config.image_gc_low_threshold_percent} must be less than "
            f"imageGCHighThresholdPercent ({config.image_gc_high_threshold_percent})",
        )
    if config.serialize_image_pulls and (config.max_parallel_image_pulls or 1) > 1:
        _fail(
            "maxParallelImagePulls",
            f"{config.max_parallel_image_pulls} needs serializeImagePulls: false",
        )
    if config.shutdown_grace_period_critical_pods > config.shutdown_grace_period:
        _fail(
            "shutdownGracePeriodCriticalPods",
            "must not be longer than shutdownGracePeriod",
        )
    if bool(config.tls_cert_file) != bool(config.tls_private_key_file):
        _fail("tlsCertFile", "tlsCertFile and tlsPrivateKeyFile must be set together")
    if config.node_status_report_frequency < config.node_status_update_frequency:
        _fail(
            "nodeStatusReportFrequency",
            "must not be shorter than nodeStatusUpdateFrequency",
        )
    _validate_eviction(config)
    _validate_allocatable(config)
