"""kube-proxy's settings: ProxySettings, read from a KubeProxyConfiguration file
(kubeproxy.config.k8s.io/v1alpha1, the schema in proxyconfig.py) or a mapping, and validated.
Pure; no flags, no I/O but the file read.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from net.proxy import proxyconfig
from net.proxy.proxyconfig import Note

log = logging.getLogger(__name__)

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
    """Unused (kept for callers that construct it); fields pykubelet does not act on are
    warned about when the file is read."""


def _duration(value: Any, where: str) -> float:
    try:
        return proxyconfig.duration(value, where)
    except proxyconfig.ConfigFieldError as exc:
        raise SettingsError(str(exc)) from None


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{where}: must be true or false, got {value!r}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: must be a string, got {value!r}")
    return value


def from_config_file(
    path: Path, base: ProxySettings | None = None, *, note: Note | None = None
) -> ProxySettings:
    """Settings from a KubeProxyConfiguration file, decoded as kube-proxy v1.36 does: zero
    values are unset, unknown fields and fields pykubelet does not implement are warnings
    (upstream decodes leniently too), wrong types and kinds are errors naming the field."""
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
    return settings_from_mapping(doc, base or ProxySettings(), where=str(path), note=note)


def with_port(address: str, port: int) -> str:
    """upstream's AppendPortIfNeeded: an address without a port gets `port`."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _addresses(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """bindAddress, and the healthz/metrics addresses defaulted from it as upstream does."""
    out: dict[str, Any] = {}
    bind = _str(doc.get("bindAddress") or "0.0.0.0", f"{where}: bindAddress")
    out["bind_address"] = bind
    v6 = ":" in bind
    for key, attr, host, port in (
        ("healthzBindAddress", "healthz_bind_address", "[::]" if v6 else "0.0.0.0", 10256),
        ("metricsBindAddress", "metrics_bind_address", "[::1]" if v6 else "127.0.0.1", 10249),
    ):
        value = _str(doc.get(key) or "", f"{where}: {key}")
        out[attr] = with_port(value, port) if value else f"{host}:{port}"
    return out


def _mode_settings(doc: Mapping[str, Any], mode: str, where: str) -> dict[str, Any]:
    """Sync periods and masquerading from the mode's own section (iptables for iptables and
    ipvs, nftables for nftables), as upstream's v1alpha1 conversion picks them."""
    out: dict[str, Any] = {}
    out["min_sync_period"], out["sync_period"] = proxyconfig.mode_periods(doc, mode, where)
    name = "nftables" if mode == "nftables" else "iptables"
    body = proxyconfig.section(doc, name, where)
    if body.get("masqueradeAll") is not None:
        out["masquerade_all"] = _bool(body["masqueradeAll"], f"{where}: {name}.masqueradeAll")
    if body.get("masqueradeBit") is not None:
        bit = body["masqueradeBit"]
        if not isinstance(bit, int) or isinstance(bit, bool):
            raise SettingsError(f"{where}: {name}.masqueradeBit: must be an integer")
        out["masquerade_bit"] = bit
    ipt = proxyconfig.section(doc, "iptables", where)
    if ipt.get("localhostNodePorts") is not None:
        out["localhost_nodeports"] = _bool(
            ipt["localhostNodePorts"], f"{where}: iptables.localhostNodePorts"
        )
    return out


def settings_from_mapping(
    doc: Mapping[str, Any],
    base: ProxySettings,
    *,
    where: str = "config",
    note: Note | None = None,
) -> ProxySettings:
    """ProxySettings from a KubeProxyConfiguration mapping (see from_config_file)."""
    note = note or log.warning
    try:
        proxyconfig.check_ignored(doc, where, note)
        out = _addresses(doc, where)
        conn = proxyconfig.section(doc, "clientConnection", where)
        if conn.get("kubeconfig"):
            out["kubeconfig"] = _str(conn["kubeconfig"], f"{where}: clientConnection.kubeconfig")
        for key, attr in (
            ("hostnameOverride", "hostname_override"),
            ("clusterCIDR", "cluster_cidr"),
        ):
            if doc.get(key):
                out[attr] = _str(doc[key], f"{where}: {key}")
        out["mode"] = _str(doc.get("mode") or "iptables", f"{where}: mode")
        out |= _mode_settings(doc, out["mode"], where)
        addrs = doc.get("nodePortAddresses")
        if addrs is not None:
            if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
                raise SettingsError(f"{where}: nodePortAddresses: must be a list of strings")
            if "primary" in addrs:
                raise SettingsError(
                    f'{where}: nodePortAddresses: "primary" is not implemented by pykubelet: '
                    "NodePorts would be open on every local address instead"
                )
            out["nodeport_addresses"] = tuple(addrs)
        level = proxyconfig.section(doc, "logging", where).get("verbosity")
        if level is not None:
            if not isinstance(level, int) or isinstance(level, bool):
                raise SettingsError(
                    f"{where}: logging.verbosity: must be an integer, got {level!r}"
                )
            out["verbosity"] = level
    except proxyconfig.ConfigFieldError as exc:
        raise SettingsError(str(exc)) from None
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
