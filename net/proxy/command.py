"""The `pykubelet proxy` subcommand: kube-proxy's flags, merged over its KubeProxyConfiguration
file (net/proxy/settings.py) into ProxySettings; then the daemon is run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from net.proxy.settings import (
    EXIT_CONFIG,
    MODES,
    NODE_ROUTES,
    ProxySettings,
    SettingsError,
    _duration,
    from_config_file,
    validate,
)

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
