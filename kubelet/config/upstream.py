"""The KubeletConfiguration v1beta1 fields pykubelet reads but does not act on: each one's type
check, the values that need no remark (upstream's default, the zero value upstream defaults, and
what pykubelet does anyway), and, where ignoring a value would be unsafe, why it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kubelet.config.errors import ConfigError
from kubelet.config.schema import (
    Bool,
    Codec,
    Duration,
    Int,
    ListOf,
    MapOf,
    Note,
    Str,
    type_name,
    unknown_key,
)


@dataclass(frozen=True)
class Float:
    """A YAML number (an integer is accepted too)."""

    def decode(self, raw: object, path: str) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(path, f"expected a number, got {type_name(raw)} {raw!r}")
        return float(raw)

    def encode(self, value: Any) -> object:
        return value


@dataclass(frozen=True)
class Shape:
    """Any value of one YAML shape ("mapping" or "list"), kept as it is."""

    kind: str

    def decode(self, raw: object, path: str) -> object:
        if type_name(raw) != self.kind:
            raise ConfigError(path, f"expected a {self.kind}, got {type_name(raw)} {raw!r}")
        return raw

    def encode(self, value: Any) -> object:
        return value


@dataclass(frozen=True)
class GoDuration:
    """logging.flushFrequency: a Go duration string, or an integer of nanoseconds."""

    def decode(self, raw: object, path: str) -> timedelta:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return timedelta(microseconds=raw / 1000)
        return Duration().decode(raw, path)

    def encode(self, value: Any) -> object:
        return Duration().encode(value)


@dataclass(frozen=True)
class Ignored:
    """A field pykubelet decodes and checks but does not implement."""

    codec: Codec
    quiet: tuple[object, ...] = ()
    """Decoded values that need no warning: upstream's default (also what a zero value becomes
    through defaulting) and values that describe what pykubelet does anyway. Empty lists and
    mappings are always quiet."""
    unsafe: str = ""
    """Set when ignoring a value outside `quiet` would be unsafe: it is then an error, and this
    says why."""


@dataclass(frozen=True)
class Group:
    """A nested settings object whose fields are all Ignored (or Groups)."""

    fields: Mapping[str, Ignored | Group]


_Z = timedelta(0)


def _duration(*quiet: timedelta) -> Ignored:
    return Ignored(Duration(), (_Z, *quiet))


def _strs() -> Ignored:
    return Ignored(ListOf(Str()))


_OUTPUT = Group(
    {"infoBufferSize": Ignored(Str(), ("0", "")), "splitStream": Ignored(Bool(), (False,))}
)

# What pykubelet does instead, for fields whose default it does not follow:
# - the handlers for profiling, debug flags and system logs are not served (any value is quiet);
# - tlsMinVersion: Python's ssl never offers less than TLS 1.2 here, so asking for 1.0-1.2 is met.
FIELDS: Mapping[str, Ignored | Group] = {
    "enableServer": Ignored(
        Bool(), (True,), unsafe="the kubelet API on address:port would be served anyway"
    ),
    "enableContentionProfiling": Ignored(Bool(), (False,)),
    "enableProfilingHandler": Ignored(Bool(), (True, False)),
    "enableDebugFlagsHandler": Ignored(Bool(), (True, False)),
    "enableSystemLogHandler": Ignored(Bool(), (True, False)),
    "enableSystemLogQuery": Ignored(Bool(), (False,)),
    "staticPodURL": Ignored(Str(), ("",)),
    "staticPodURLHeader": Ignored(Shape("mapping")),
    "httpCheckFrequency": _duration(timedelta(seconds=20)),
    "tlsCipherSuites": Ignored(
        ListOf(Str()),
        unsafe="the kubelet API would offer cipher suites outside the list",
    ),
    "tlsCurvePreferences": Ignored(
        ListOf(Int()), unsafe="the kubelet API would offer curves outside the list"
    ),
    "tlsMinVersion": Ignored(
        Str(),
        ("", "VersionTLS10", "VersionTLS11", "VersionTLS12"),
        unsafe="the kubelet API would still accept TLS 1.2",
    ),
    "registryPullQPS": Ignored(Int(0), (5,)),
    "registryBurst": Ignored(Int(0), (0, 10)),
    "eventRecordQPS": Ignored(Int(0), (50,)),
    "eventBurst": Ignored(Int(0), (0, 100)),
    "kubeAPIQPS": Ignored(Int(0), (50,)),
    "kubeAPIBurst": Ignored(Int(0), (0, 100)),
    "contentType": Ignored(Str(), ("", "application/vnd.kubernetes.protobuf")),
    "imagePullCredentialsVerificationPolicy": Ignored(
        Str(),
        ("", "NeverVerify"),
        unsafe="pykubelet does not check that a pod may use an image pulled with other "
        "credentials (it behaves as NeverVerify)",
    ),
    "preloadedImagesVerificationAllowlist": _strs(),
    "oomScoreAdj": Ignored(Int(-1000, 1000), (-999,)),
    "streamingConnectionIdleTimeout": _duration(timedelta(hours=4)),
    "imageMaximumGCAge": _duration(),
    "kubeletCgroups": Ignored(Str(), ("",)),
    "systemCgroups": Ignored(Str(), ("",)),
    "cpuManagerPolicy": Ignored(Str(), ("", "none")),
    "cpuManagerPolicyOptions": Ignored(MapOf(Str())),
    "cpuManagerReconcilePeriod": _duration(timedelta(seconds=10)),
    "singleProcessOOMKill": Ignored(Bool()),
    "memoryManagerPolicy": Ignored(Str(), ("", "None")),
    "memoryReservationPolicy": Ignored(Str(), ("", "None")),
    "topologyManagerPolicy": Ignored(Str(), ("", "none")),
    "topologyManagerScope": Ignored(Str(), ("", "container")),
    "topologyManagerPolicyOptions": Ignored(MapOf(Str())),
    "qosReserved": Ignored(MapOf(Str())),
    "reservedSystemCPUs": Ignored(Str(), ("",)),
    "reservedMemory": Ignored(Shape("list")),
    "runOnce": Ignored(
        Bool(),
        (False,),
        unsafe="pykubelet would keep running instead of exiting after the static pods started",
    ),
    "cpuCFSQuota": Ignored(Bool(), (True,)),
    "cpuCFSQuotaPeriod": Ignored(Duration(), (timedelta(milliseconds=100),)),
    "nodeStatusMaxImages": Ignored(Int(-1), (50,)),
    "maxOpenFiles": Ignored(Int(0), (0, 1000000)),
    "podsPerCore": Ignored(Int(0), (0,)),
    "enableControllerAttachDetach": Ignored(Bool(), (True,)),
    "protectKernelDefaults": Ignored(Bool(), (False,)),
    "makeIPTablesUtilChains": Ignored(Bool(), (True,)),
    "iptablesMasqueradeBit": Ignored(Int(0, 31), (14,)),
    "iptablesDropBit": Ignored(Int(0, 31), (15,)),
    "containerLogMaxWorkers": Ignored(Int(1), (1,)),
    "containerLogMonitorInterval": Ignored(Duration(), (timedelta(seconds=10),)),
    "configMapAndSecretChangeDetectionStrategy": Ignored(
        Str(choices=("Get", "Cache", "Watch")), ("Watch",)
    ),
    "showHiddenMetricsForVersion": Ignored(Str(), ("",)),
    "volumePluginDir": Ignored(Str(), ("", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/")),
    "kernelMemcgNotification": Ignored(Bool(), (False,)),
    "seccompDefault": Ignored(
        Bool(),
        (False,),
        unsafe="pods without a seccomp profile would run unconfined instead of RuntimeDefault",
    ),
    "memoryThrottlingFactor": Ignored(Float(), (0.9,)),
    "localStorageCapacityIsolation": Ignored(Bool(), (True,)),
    "crashLoopBackOff": Group(
        {"maxContainerRestartPeriod": Ignored(Duration(), (timedelta(seconds=300),))}
    ),
    "userNamespaces": Group({"idsPerPod": Ignored(Int(0), (65536,))}),
    "tracing": Group({"endpoint": Ignored(Str()), "samplingRatePerMillion": Ignored(Int(0))}),
    "logging": Group(
        {
            "format": Ignored(Str(), ("", "text")),
            "flushFrequency": Ignored(GoDuration(), (_Z, timedelta(seconds=5))),
            "verbosity": Ignored(Int(0)),  # implemented: the -v level
            "vmodule": Ignored(Shape("list")),
            "options": Group({"json": _OUTPUT, "text": _OUTPUT}),
        }
    ),
}
IMPLEMENTED_LEAVES = frozenset({"logging.verbosity"})
"""Leaves of the groups above that pykubelet does act on."""


def _is_empty(value: object) -> bool:
    """Empty lists, mappings and strings: what upstream leaves unset or defaults."""
    return isinstance(value, Mapping | list | tuple | str) and not value


def _check_leaf(spec: Ignored, raw: object, path: str, key: str, note: Note) -> None:
    value = spec.codec.decode(raw, path)
    if key in IMPLEMENTED_LEAVES or _is_empty(value) or value in spec.quiet:
        return
    if spec.unsafe:
        raise ConfigError(path, f"{raw!r} is not implemented by pykubelet: {spec.unsafe}")
    note(f"{path}: {raw!r} is not implemented by pykubelet; ignored")


def check_group(
    fields: Mapping[str, Ignored | Group], raw: object, path: str, key: str, note: Note
) -> None:
    """Type-check a nested object of ignored fields; warn about unknown keys and about values
    that would change upstream's behaviour."""
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping, got {type_name(raw)} {raw!r}")
    for name, value in raw.items():
        check_field(fields, name, value, f"{path}.{name}", f"{key}.{name}", note)


def check_field(
    fields: Mapping[str, Ignored | Group],
    name: str,
    raw: object,
    path: str,
    key: str,
    note: Note,
) -> None:
    """Check one value of an ignored field (None means unset: nothing to check)."""
    spec = fields.get(name)
    if spec is None:
        unknown_key(path.rpartition(".")[0], name)
        return
    if raw is None:
        return
    if isinstance(spec, Group):
        check_group(spec.fields, raw, path, key, note)
    else:
        _check_leaf(spec, raw, path, key, note)


def check_feature_gates(raw: object, path: str, note: Note) -> dict[str, bool]:
    """featureGates: name -> bool. pykubelet has no feature gates: each one set is named."""
    gates: Mapping[str, bool] = MapOf(Bool()).decode(raw, path) if raw is not None else {}
    for name, enabled in gates.items():
        note(f"{path}[{name}]: {str(enabled).lower()}: pykubelet has no feature gates; ignored")
    return dict(gates)


def is_upstream_only(keys: tuple[str, ...]) -> bool:
    """Whether the YAML key path names a field pykubelet does not implement."""
    return keys[0] == "featureGates" or keys[0] in FIELDS


def check_path(keys: tuple[str, ...], raw: object, path: str, note: Note) -> None:
    """Check a value given for the (nested) ignored field at `keys`, naming it `path` (a flag)."""
    if keys[0] == "featureGates":
        check_feature_gates(raw, path, note)
        return
    fields: Mapping[str, Ignored | Group] = FIELDS
    for key in keys[:-1]:
        spec = fields[key]
        assert isinstance(spec, Group), f"{key} is not a group"
        fields = spec.fields
    spec = fields[keys[-1]]
    if isinstance(spec, Group):
        check_group(spec.fields, raw, path, ".".join(keys), note)
    else:
        _check_leaf(spec, raw, path, ".".join(keys), note)
