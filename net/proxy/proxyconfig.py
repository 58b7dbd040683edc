"""The KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) schema as kube-proxy v1.36 reads
it: upstream's defaulting (zero means unset), the per-mode sync periods and masquerade settings,
and a warning naming each field set to something pykubelet does not do. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kube.units import parse_duration

Note = Callable[[str], None]
"""Receives one warning line."""
Json = Mapping[str, Any]


class ConfigFieldError(ValueError):
    """A field of the file has the wrong type or an unsafe value; the message names it."""


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "mapping"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}.get(
        type(value), type(value).__name__
    )


def _want(ok: bool, value: object, what: str, where: str) -> None:
    if not ok:
        raise ConfigFieldError(f"{where}: expected {what}, got {_kind(value)} {value!r}")


def duration(value: object, where: str) -> float:
    """A Go duration string (or a number of seconds) in seconds; never negative."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        _want(isinstance(value, str), value, "a duration such as 30s", where)
        try:
            seconds = parse_duration(str(value)).total_seconds()
        except ValueError as exc:
            raise ConfigFieldError(f"{where}: {exc}") from None
    if seconds < 0:
        raise ConfigFieldError(f'{where}: must not be negative, got "{value}"')
    return seconds


# Section -> field -> (type check, values that need no warning). A value of None (YAML null)
# is unset everywhere. These are the fields pykubelet reads but does not act on.
_STR, _BOOL, _INT, _DUR, _LIST, _MAP = "str", "bool", "int", "duration", "list", "map"
IGNORED: Mapping[str, Mapping[str, tuple[str, tuple[object, ...]]]] = {
    "": {
        "bindAddressHardFail": (_BOOL, (False,)),
        "enableProfiling": (_BOOL, (False,)),
        "showHiddenMetricsForVersion": (_STR, ("",)),
        "detectLocalMode": (_STR, ("", "ClusterCIDR")),
        "oomScoreAdj": (_INT, (-999,)),
        "configSyncPeriod": (_DUR, (0.0, 900.0)),
        "portRange": (_STR, ("",)),
        "windowsRunAsService": (_BOOL, (False,)),
    },
    "clientConnection": {
        "acceptContentTypes": (_STR, ("",)),
        "contentType": (_STR, ("", "application/vnd.kubernetes.protobuf")),
        "qps": (_INT, (0, 5)),
        "burst": (_INT, (0, 10)),
    },
    "ipvs": {
        "scheduler": (_STR, ("", "rr")),
        "excludeCIDRs": (_LIST, ()),
        "strictARP": (_BOOL, (False,)),
        "tcpTimeout": (_DUR, (0.0,)),
        "tcpFinTimeout": (_DUR, (0.0,)),
        "udpTimeout": (_DUR, (0.0,)),
    },
    "conntrack": {
        "maxPerCore": (_INT, (0, 32768)),  # 0: leave the limit as it is, as pykubelet does
        "min": (_INT, (0, 131072)),
        "tcpEstablishedTimeout": (_DUR, (0.0, 86400.0)),
        "tcpCloseWaitTimeout": (_DUR, (0.0, 3600.0)),
        "tcpBeLiberal": (_BOOL, (False,)),
        "udpTimeout": (_DUR, (0.0,)),
        "udpStreamTimeout": (_DUR, (0.0,)),
    },
    "winkernel": {
        "networkName": (_STR, ("",)),
        "sourceVip": (_STR, ("",)),
        "enableDSR": (_BOOL, (False,)),
        "rootHnsEndpointName": (_STR, ("",)),
        "forwardHealthCheckVip": (_BOOL, (False,)),
    },
    "detectLocal": {"bridgeInterface": (_STR, ("",)), "interfaceNamePrefix": (_STR, ("",))},
    "logging": {
        "format": (_STR, ("", "text")),
        "flushFrequency": (_DUR, (0.0, 5.0, 5e9)),
        "vmodule": (_LIST, ()),
        "options": (_MAP, ()),
    },
}
# Fields settings.py turns into ProxySettings (the rest of each section is IGNORED above).
USED: Mapping[str, frozenset[str]] = {
    "": frozenset(
        {
            "apiVersion",
            "kind",
            "hostnameOverride",
            "bindAddress",
            "healthzBindAddress",
            "metricsBindAddress",
            "mode",
            "clusterCIDR",
            "nodePortAddresses",
            "featureGates",
            "iptables",
            "nftables",
            # v1alpha2's top-level periods, which pykubelet also reads
            "syncPeriod",
            "minSyncPeriod",
            *(k for k in IGNORED if k),
        }
    ),
    "clientConnection": frozenset({"kubeconfig"}),
    "iptables": frozenset(
        {"masqueradeBit", "masqueradeAll", "localhostNodePorts", "syncPeriod", "minSyncPeriod"}
    ),
    "nftables": frozenset({"masqueradeBit", "masqueradeAll", "syncPeriod", "minSyncPeriod"}),
    "ipvs": frozenset({"syncPeriod", "minSyncPeriod"}),
    "logging": frozenset({"verbosity"}),
}


def _typed(kind: str, value: object, where: str) -> object:
    if kind == _DUR:
        return duration(value, where)
    checks: dict[str, tuple[bool, str]] = {
        _STR: (isinstance(value, str), "a string"),
        _BOOL: (isinstance(value, bool), "true or false"),
        _INT: (isinstance(value, int) and not isinstance(value, bool), "an integer"),
        _LIST: (isinstance(value, list), "a list"),
        _MAP: (isinstance(value, dict), "a mapping"),
    }
    ok, what = checks[kind]
    _want(ok, value, what, where)
    return value


def section(doc: Json, name: str, where: str) -> Json:
    """A nested object (absent or null: empty)."""
    value = doc.get(name) if name else doc
    if value is None:
        return {}
    _want(isinstance(value, dict), value, "a mapping", f"{where}: {name}")
    assert isinstance(value, dict)
    return value


def _zeroish(value: object) -> bool:
    """Unset in Go terms: null, "", "0", 0, false, or collections of nothing else."""
    if isinstance(value, dict):
        return all(_zeroish(v) for v in value.values())
    if isinstance(value, list):
        return not value
    return value in (None, "", "0", 0, False)


def _check_section(doc: Json, name: str, where: str, note: Note) -> None:
    fields = IGNORED.get(name, {})
    used = USED.get(name, frozenset())
    prefix = f"{name}." if name else ""
    for key, value in section(doc, name, where).items():
        if key not in fields and key not in used:
            note(f'{where}: unknown field "{prefix}{key}"; ignored')
        elif key in fields and value is not None:
            kind, quiet = fields[key]
            typed = _typed(kind, value, f"{where}: {prefix}{key}")
            if not (isinstance(typed, list | dict) and _zeroish(typed)) and typed not in quiet:
                note(f"{where}: {prefix}{key}: {value!r} is not implemented by pykubelet; ignored")


def check_ignored(doc: Json, where: str, note: Note) -> None:
    """Type-check every field pykubelet does not implement and warn, once each, about unknown
    fields and values that would make upstream behave differently."""
    for name in (*IGNORED, "iptables", "nftables"):
        _check_section(doc, name, where, note)
    gates = section(doc, "featureGates", where)
    for gate, enabled in gates.items():
        _want(isinstance(enabled, bool), enabled, "true or false", f"{where}: featureGates.{gate}")
        note(f"{where}: featureGates.{gate}: pykubelet has no feature gates; ignored")


def mode_periods(doc: Json, mode: str, where: str) -> tuple[float, float]:
    """(minSyncPeriod, syncPeriod) of the mode's section, defaulted as upstream: 1s and 30s
    (ipvs.minSyncPeriod has no default: 0). v1alpha2's top-level fields win when set."""
    name = mode if mode in ("ipvs", "nftables") else "iptables"
    body = section(doc, name, where)
    out = []
    for key, default in (("minSyncPeriod", 0.0 if name == "ipvs" else 1.0), ("syncPeriod", 30.0)):
        value = duration(body[key], f"{where}: {name}.{key}") if body.get(key) else 0.0
        if doc.get(key):
            value = duration(doc[key], f"{where}: {key}")
        out.append(value or default)
    return out[0], out[1]
