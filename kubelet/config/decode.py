"""Reading a KubeletConfiguration file: YAML to checked dataclasses, upstream defaulting quirks,
cross-field validation, and the YAML form back. Reads only the one file it is given.
"""

from __future__ import annotations

import copy
import logging
import os
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from kubelet.config import upstream
from kubelet.config.errors import ConfigError
from kubelet.config.model import API_VERSION, DEFAULT_EVICTION_HARD, KIND, KubeletConfiguration
from kubelet.config.schema import Note, decode_fields, encode_fields, type_name, warnings_to
from kubelet.config.upstream import check_feature_gates

log = logging.getLogger(__name__)

# Settings holding paths that upstream resolves against the config file's directory
# (KubeletConfigurationPathRefs), as YAML key paths.
_PATH_FIELDS = (
    ("staticPodPath",),
    ("tlsCertFile",),
    ("tlsPrivateKeyFile",),
    ("resolvConf",),
    ("volumePluginDir",),
    ("podLogsDir",),
    ("authentication", "x509", "clientCAFile"),
)


def check_header(data: object, source: str = KIND) -> dict[str, Any]:
    """The parsed YAML of a KubeletConfiguration as a mapping with the right apiVersion/kind."""
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected a mapping, got {type_name(data)}")
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        got = data.get(key)
        if got is None:
            raise ConfigError(source, f'missing "{key}": want "{want}"')
        if got != want:
            raise ConfigError(f"{source}.{key}", f'unsupported value "{got}": want "{want}"')
    return data


def _split(data: dict[str, Any], note: Note) -> tuple[dict[str, Any], dict[str, object]]:
    """The implemented fields, and the upstream-only ones (checked, warned about, kept raw)."""
    known: dict[str, Any] = {}
    kept: dict[str, object] = {}
    for key, raw in data.items():
        if key == "featureGates":
            if raw is not None:
                kept[key] = check_feature_gates(raw, f"{KIND}.{key}", note)
        elif key in upstream.FIELDS:
            upstream.check_field(upstream.FIELDS, key, raw, f"{KIND}.{key}", key, note)
            if raw is not None:
                kept[key] = raw
        else:
            known[key] = raw
    return known, kept


def _upstream_defaulting(kwargs: dict[str, Any]) -> None:
    """The defaults that depend on other fields (upstream SetDefaults_KubeletConfiguration, and
    the kubelet's loadConfigFile for evictionHard)."""
    if "node_status_report_frequency" not in kwargs and "node_status_update_frequency" in kwargs:
        kwargs["node_status_report_frequency"] = kwargs["node_status_update_frequency"]
    if "serialize_image_pulls" not in kwargs:
        parallel = kwargs.get("max_parallel_image_pulls")
        kwargs["serialize_image_pulls"] = parallel is None or parallel < 2
    if kwargs.get("merge_default_eviction_settings") and "eviction_hard" in kwargs:
        merged = {**DEFAULT_EVICTION_HARD, **kwargs["eviction_hard"]}
        kwargs["eviction_hard"] = MappingProxyType(merged)


def from_dict(data: object, *, note: Note | None = None) -> KubeletConfiguration:
    """Decode the parsed YAML of a KubeletConfiguration: check apiVersion and kind and every
    value, apply upstream defaults (zero values count as unset where upstream's do), then
    cross-check (validate). Unknown fields and values of fields pykubelet does not implement
    are warnings sent to `note` (default: the log); unsafe ones are errors."""
    note = note or log.warning
    with warnings_to(note):
        known, kept = _split(check_header(data), note)
        kwargs = decode_fields(KubeletConfiguration, known, KIND, ignore=("apiVersion", "kind"))
    _upstream_defaulting(kwargs)
    config = KubeletConfiguration(**kwargs, upstream_only=MappingProxyType(kept))
    validate(config)
    return config


def to_dict(config: KubeletConfiguration) -> dict[str, object]:
    """The full YAML form (every field, upstream names, Go durations) that from_dict reads back."""
    out = {"apiVersion": API_VERSION, "kind": KIND, **encode_fields(config)}
    out.update(copy.deepcopy(dict(config.upstream_only)))
    return dict(sorted(out.items()))


def _absolute(value: str) -> bool:
    return not value or os.path.isabs(value)


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of the YAML mapping with its relative paths made absolute against `base`."""
    out = copy.deepcopy(data)
    for keys in _PATH_FIELDS:
        parent: object = out
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        value = parent.get(keys[-1]) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(value, str) and not _absolute(value):
            parent[keys[-1]] = str(base / value)
    return out


def verbosity(config: KubeletConfiguration) -> int:
    """logging.verbosity (the -v level the file asks for)."""
    logging_ = config.upstream_only.get("logging")
    level = logging_.get("verbosity") if isinstance(logging_, dict) else None
    return level if isinstance(level, int) else 0


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """The YAML (or JSON) text of a KubeletConfiguration as a checked mapping."""
    if not text.strip():
        raise ConfigError(source, "the kubelet config file is empty")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(source, f"invalid YAML: {e}") from None
    return check_header(data, source if data is None or isinstance(data, dict) else KIND)


def loads(
    text: str, *, source: str = KIND, base_dir: Path | None = None, note: Note | None = None
) -> KubeletConfiguration:
    """Decode a KubeletConfiguration from YAML text. `source` names it in YAML errors; relative
    paths in it are resolved against `base_dir` when given (upstream resolves them against the
    config file's directory)."""
    data = parse_yaml(text, source)
    return from_dict(data if base_dir is None else resolve_paths(data, base_dir), note=note)


def read_file(path: Path, what: str = "kubelet config file") -> dict[str, Any]:
    """The checked YAML mapping in `path`; missing, unreadable or empty files name the path."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), f"{what} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), f"cannot read {what}: {e}") from None
    return parse_yaml(text, str(path))


def load_file(path: Path | str | None, *, note: Note | None = None) -> KubeletConfiguration:
    """The configuration in `path`, or all defaults when `path` is None. A named file that is
    missing, unreadable or empty is an error naming the path."""
    if path is None:
        return KubeletConfiguration()
    path = Path(path)
    data = resolve_paths(read_file(path), path.parent.absolute())
    return from_dict(data, note=note)


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
    if config.shutdown_grace_period_by_pod_priority and (
        config.shutdown_grace_period or config.shutdown_grace_period_critical_pods
    ):
        _fail(
            "shutdownGracePeriodByPodPriority",
            "cannot be set together with shutdownGracePeriod or shutdownGracePeriodCriticalPods",
        )
    if config.node_status_report_frequency < config.node_status_update_frequency:
        _fail(
            "nodeStatusReportFrequency",
            "must not be shorter than nodeStatusUpdateFrequency",
        )
    _validate_eviction(config)
    _validate_allocatable(config)
