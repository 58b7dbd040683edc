"""The `pykubelet proxy` subcommand: kube-proxy's flags and its KubeProxyConfiguration file
(kubeproxy.config.k8s.io/v1alpha1) turned into ProxySettings, then the daemon is run.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from kubelet.config.units import parse_duration

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


# ---- flags -----------------------------------------------------------------------------------
_FLAG_MAP = {
    "kubeconfig": "kubeconfig",
    "hostname_override": "hostname_override",
    "cluster_cidr": "cluster_cidr",
    "proxy_mode": "mode",
    "bind_address": "bind_address",
    "healthz_bind_address": "healthz_bind_address",
    "metrics_bind_address": "metrics_bind_address",
    "nodeport_addresses": "nodeport_addresses",
    "masquerade_all": "masquerade_all",
    "iptables_masquerade_bit": "masquerade_bit",
    "iptables_localhost_nodeports": "localhost_nodeports",
    "iptables_min_sync_period": "min_sync_period",
    "iptables_sync_period": "sync_period",
    "node_routes": "node_routes",
    "proxy_v": "verbosity",
    "cleanup": "cleanup",
}


def _flag_bool(value: str) -> bool:
    """A Go-style boolean flag value (`--flag=false`)."""
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r}")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "proxy",
        help="run the Service proxy and node routes (kube-proxy's job)",
        description="Programs Service rules (kube-proxy's flags); flags override --config.",
    )
    p.add_argument("--config", type=Path, help="a KubeProxyConfiguration file")
    p.add_argument("--kubeconfig", help="kubeconfig with the kube-proxy identity")
    p.add_argument("--hostname-override", help="the node name (default: the hostname)")
    p.add_argument("--cluster-cidr", help="the pod network (for masquerading off-cluster traffic)")
    p.add_argument("--proxy-mode", choices=MODES, help="iptables (default), ipvs or nftables")
    p.add_argument(
        "--bind-address", help="the node's primary IP, as upstream (0.0.0.0: from the interfaces)"
    )
    p.add_argument("--healthz-bind-address", help="host:port of /healthz (0.0.0.0:10256)")
    p.add_argument("--metrics-bind-address", help="host:port of /metrics (127.0.0.1:10249)")
    p.add_argument(
        "--nodeport-addresses",
        type=lambda v: tuple(a for a in v.split(",") if a),
        help="CIDRs whose addresses accept NodePorts, comma separated (default: all)",
    )
    p.add_argument(
        "--masquerade-all", action="store_const", const=True, help="SNAT all Service traffic"
    )
    p.add_argument("--iptables-masquerade-bit", type=int, help="fwmark bit for SNAT (14)")
    p.add_argument(
        "--iptables-localhost-nodeports",
        type=_flag_bool,
        nargs="?",
        const=True,
        metavar="BOOL",
        help="accept NodePorts on 127.0.0.1 too (true; sets route_localnet=1)",
    )
    p.add_argument("--iptables-min-sync-period", help="least time between syncs (1s)")
    p.add_argument("--iptables-sync-period", help="time between full syncs (30s)")
    p.add_argument(
        "--node-routes",
        choices=NODE_ROUTES,
        help="route other nodes' podCIDRs: host-gw or vxlan (default none)",
    )
    p.add_argument(
        "--cleanup",
        action="store_const",
        const=True,
        help="remove the proxy's iptables rules from this network namespace and exit",
    )
    p.add_argument("--v", dest="proxy_v", type=int, help="log verbosity")
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> ProxySettings:
    """The config file (if any), then every flag given on the command line over it."""
    base = ProxySettings()
    if getattr(args, "config", None):
        base = from_config_file(args.config, base)
    out: dict[str, Any] = {}
    for flag, attr in _FLAG_MAP.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if attr in ("min_sync_period", "sync_period"):
            value = _duration(value, "--" + flag.replace("_", "-"))
        out[attr] = value
    return validate(replace(base, **out))


def describe(s: ProxySettings) -> str:
    return " ".join(f"{f.name}={getattr(s, f.name)}" for f in fields(s) if f.name not in ("extra",))


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"pykubelet proxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.verbosity >= 4:
        logging.getLogger().setLevel(logging.DEBUG)
    from net.proxy.daemon import main as run_daemon

    return run_daemon(settings)


def main(argv: Sequence[str]) -> int:
    """Entry for tests: parse `argv` as `pykubelet proxy ARGS` would."""
    parser = argparse.ArgumentParser(prog="pykubelet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["proxy", *argv])
    code: int = args.func(args)
    return code
