"""kube-proxy's settings: ProxySettings, read from a KubeProxyConfiguration file
(kubeproxy.config.k8s.io/v1alpha1) or a mapping, and validated. Pure; no flags, no I/O but the
file read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kube.units import parse_duration

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"
MODES = ("iptables", "ipvs", "nftables")
NODE_ROUTES = ("none", "host-gw", "vxlan")
EXIT_CONFIG = 2
"""Exit status for a bad flag or config file."""
EXIT_UNSUPPORTED = 3
"""Exit status when the host lacks what the chosen mode needs (IPVS on a kernel without it)."""


class SettingsError(ValueError):
    """A flag or a config file field is invalid; the message names it."""


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy process is told (field names follow KubeProxyConfiguration)."""

    kubeconfig: str = ""
    hostname_override: str = ""
    cluster_cidr: str = ""
    mode: str = "iptables"
    bind_address: str = "0.0.0.0"
    healthz_bind_address: str = "0.0.0.0:10256"
    metrics_bind_address: str = "127.0.0.1:10249"
    nodeport_addresses: tuple[str, ...] = ()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_nodeports: bool = True
    """NodePorts also on 127.0.0.1 (sets route_localnet=1), as upstream's default."""
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    node_routes: str = "none"
    """pykubelet's own: route other nodes' podCIDRs (host-gw or vxlan), or not."""
    verbosity: int = 0
    cleanup: bool = False
    """Remove the proxy's rules from this netns and exit (upstream --cleanup)."""
    history_size: int = 20
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Config file fields read but not acted on (kept for messages)."""


def _duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        seconds = parse_duration(str(value)).total_seconds()
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from exc
    if seconds < 0:
        raise SettingsError(f'{where}: must not be negative, got "{value}"')
    return seconds


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{where}: must be true or false, got {value!r}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: must be a string, got {value!r}")
    return value


def from_config_file(path: Path, base: ProxySettings | None = None) -> ProxySettings:
    """Settings from a KubeProxyConfiguration file (unknown fields are ignored, as upstream's
    lenient decoding does; wrong types and kinds are errors naming the field)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise SettingsError(f"config file {path}: expected a {KIND} object")
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise SettingsError(
            f"config file {path}: expected kind {KIND} apiVersion {API_VERSION}, got kind "
            f"{doc.get('kind')!r} apiVersion {doc.get('apiVersion')!r}"
        )
    return settings_from_mapping(doc, base or ProxySettings(), where=str(path))


def settings_from_mapping(
    doc: Mapping[str, Any], base: ProxySettings, *, where: str = "config"
) -> ProxySettings:
    out: dict[str, Any] = {}

    def section(name: str) -> Mapping[str, Any]:
        value = doc.get(name) or {}
        if not isinstance(value, Mapping):
            raise SettingsError(f"{where}: {name}: must be an object")
        return value

    conn, ipt, logging_ = section("clientConnection"), section("iptables"), section("logging")
    if "kubeconfig" in conn:
        out["kubeconfig"] = _str(conn["kubeconfig"], f"{where}: clientConnection.kubeconfig")
    simple = {
        "hostnameOverride": "hostname_override",
        "clusterCIDR": "cluster_cidr",
        "bindAddress": "bind_address",
        "healthzBindAddress": "healthz_bind_address",
        "metricsBindAddress": "metrics_bind_address",
    }
    for key, attr in simple.items():
        if doc.get(key) not in (None, ""):
            out[attr] = _str(doc[key], f"{where}: {key}")
    if doc.get("mode") not in (None, ""):
        out["mode"] = _str(doc["mode"], f"{where}: mode")
    if doc.get("nodePortAddresses") is not None:
        addrs = doc["nodePortAddresses"]
        if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
            raise SettingsError(f"{where}: nodePortAddresses: must be a list of strings")
        out["nodeport_addresses"] = tuple(addrs)
    if "masqueradeAll" in ipt:
        out["masquerade_all"] = _bool(ipt["masqueradeAll"], f"{where}: iptables.masqueradeAll")
    if ipt.get("localhostNodePorts") is not None:
        out["localhost_nodeports"] = _bool(
            ipt["localhostNodePorts"], f"{where}: iptables.localhostNodePorts"
        )
    if ipt.get("masqueradeBit") is not None:
        bit = ipt["masqueradeBit"]
        if not isinstance(bit, int) or isinstance(bit, bool):
            raise SettingsError(f"{where}: iptables.masqueradeBit: must be an integer")
        out["masquerade_bit"] = bit
    # syncPeriod/minSyncPeriod: top level (v1.30+) wins over the older iptables.* fields.
    for key, attr in (("minSyncPeriod", "min_sync_period"), ("syncPeriod", "sync_period")):
        if ipt.get(key) not in (None, ""):
            out[attr] = _duration(ipt[key], f"{where}: iptables.{key}")
        if doc.get(key) not in (None, ""):
            out[attr] = _duration(doc[key], f"{where}: {key}")
    if logging_.get("verbosity") is not None:
        level = logging_["verbosity"]
        if not isinstance(level, int) or isinstance(level, bool):
            raise SettingsError(f"{where}: logging.verbosity: must be an integer, got {level!r}")
        out["verbosity"] = level
    known = {
        "apiVersion",
        "kind",
        "clientConnection",
        "iptables",
        "logging",
        "nodePortAddresses",
        "mode",
        "minSyncPeriod",
        "syncPeriod",
        *simple,
    }
    out["extra"] = {k: v for k, v in doc.items() if k not in known}
    return validate(replace(base, **out))


def validate(s: ProxySettings) -> ProxySettings:
    if s.mode not in MODES:
        raise SettingsError(f'proxy mode "{s.mode}": must be one of {", ".join(MODES)}')
    if s.node_routes not in NODE_ROUTES:
        raise SettingsError(
            f'--node-routes "{s.node_routes}": must be one of {", ".join(NODE_ROUTES)}'
        )
    if not 0 <= s.masquerade_bit <= 31:
        raise SettingsError(f"masqueradeBit {s.masquerade_bit}: must be within [0, 31]")
    if s.sync_period <= 0:
        raise SettingsError("syncPeriod: must be greater than 0")
    if s.min_sync_period > s.sync_period:
        raise SettingsError(
            f"minSyncPeriod ({s.min_sync_period}s) must not exceed syncPeriod ({s.sync_period}s)"
        )
    for cidr in s.nodeport_addresses:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(f'nodePortAddresses "{cidr}": not a CIDR') from None
    for name in ("healthz_bind_address", "metrics_bind_address"):
        value = getattr(s, name)
        if value:
            split_host_port(value, name)
    return s


def split_host_port(value: str, what: str = "address") -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) into its parts; raises SettingsError naming `what`."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f'{what} "{value}": expected host:port')
    return host.strip("[]") or "0.0.0.0", int(port)
