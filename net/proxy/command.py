"""kube-proxy's command line, for the `kube-proxy` console script (a drop-in for the Go binary)
and `pykubelet proxy`: every upstream v1.36 flag plus pykubelet's --node-routes, combined with
the KubeProxyConfiguration file as upstream does (with --config, flags other than
--hostname-override, --cleanup and -v are ignored); then the daemon is run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from kube import KUBERNETES_VERSION
from kube.goflags import go_bool, go_int
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

log = logging.getLogger(__name__)
Note = Callable[[str], None]


@dataclass(frozen=True)
class ProxyFlag:
    """One kube-proxy flag: its value kind and the ProxySettings field it sets, if any."""

    name: str
    kind: str = "str"
    attr: str = ""
    """The ProxySettings field it sets; empty: pykubelet does not implement it."""
    default: str = ""
    """For unimplemented flags: upstream's default (a value that needs no warning)."""
    always: bool = False
    """Applies even with --config (upstream keeps these; all other flags are ignored then)."""

    @property
    def dest(self) -> str:
        return "kp_" + self.name.replace("-", "_")


def _f(name: str, kind: str = "str", attr: str = "", default: str = "") -> ProxyFlag:
    return ProxyFlag(name, kind, attr, default)


FLAGS: tuple[ProxyFlag, ...] = (
    ProxyFlag("hostname-override", attr="hostname_override", always=True),
    ProxyFlag("cleanup", "bool", "cleanup", always=True),
    ProxyFlag("node-routes", attr="node_routes", always=True),  # pykubelet's own
    _f("kubeconfig", attr="kubeconfig"),
    _f("bind-address", attr="bind_address"),
    _f("healthz-bind-address", attr="healthz_bind_address"),
    _f("metrics-bind-address", attr="metrics_bind_address"),
    _f("proxy-mode", attr="mode"),
    _f("cluster-cidr", attr="cluster_cidr"),
    _f("nodeport-addresses", "list", "nodeport_addresses"),
    _f("masquerade-all", "bool", "masquerade_all"),
    _f("iptables-masquerade-bit", "int", "masquerade_bit"),
    _f("iptables-localhost-nodeports", "bool", "localhost_nodeports"),
    _f("iptables-sync-period", "duration", "sync_period"),
    _f("iptables-min-sync-period", "duration", "min_sync_period"),
    _f("ipvs-sync-period", "duration", "sync_period"),
    _f("ipvs-min-sync-period", "duration", "min_sync_period"),
    _f("healthz-port", "int", "healthz_bind_address"),  # deprecated: 0 turns /healthz off
    _f("metrics-port", "int", "metrics_bind_address"),  # deprecated: 0 turns /metrics off
    _f("master"),
    _f("feature-gates"),
    _f("kube-api-content-type", default="application/vnd.kubernetes.protobuf"),
    _f("kube-api-burst", "int", default="10"),
    _f("kube-api-qps", "float", default="5"),
    _f("bind-address-hard-fail", "bool", default="false"),
    _f("profiling", "bool", default="false"),
    _f("show-hidden-metrics-for-version"),
    _f("ipvs-scheduler"),
    _f("ipvs-exclude-cidrs"),
    _f("ipvs-strict-arp", "bool", default="false"),
    _f("ipvs-tcp-timeout", "duration", default="0s"),
    _f("ipvs-tcpfin-timeout", "duration", default="0s"),
    _f("ipvs-udp-timeout", "duration", default="0s"),
    _f("detect-local-mode", default="ClusterCIDR"),
    _f("pod-bridge-interface"),
    _f("pod-interface-name-prefix"),
    _f("oom-score-adj", "int", default="-999"),
    _f("conntrack-max-per-core", "int", default="32768"),
    _f("conntrack-min", "int", default="131072"),
    _f("conntrack-tcp-timeout-established", "duration", default="24h"),
    _f("conntrack-tcp-timeout-close-wait", "duration", default="1h"),
    _f("conntrack-tcp-be-liberal", "bool", default="false"),
    _f("conntrack-udp-timeout", "duration", default="0s"),
    _f("conntrack-udp-timeout-stream", "duration", default="0s"),
    _f("config-sync-period", "duration", default="15m"),
    _f("vmodule"),
    _f("logging-format", default="text"),
    _f("log-flush-frequency", "duration", default="5s"),
    _f("log-json-info-buffer-size", default="0"),
    _f("log-json-split-stream", "bool", default="false"),
    _f("log-text-info-buffer-size", default="0"),
    _f("log-text-split-stream", "bool", default="false"),
    _f("boot-id-file", default="/proc/sys/kernel/random/boot_id"),
    _f("machine-id-file", default="/etc/machine-id,/var/lib/dbus/machine-id"),
)
# Flags that stop instead of running the proxy, which pykubelet does not implement.
REFUSED = ("write-config-to", "init-only")


def add_flags(p: argparse.ArgumentParser) -> None:
    """Every kube-proxy flag on `p`; values stay raw strings (a list, one per use)."""
    p.add_argument("--config", metavar="FILE", help="a KubeProxyConfiguration file")
    p.add_argument("--version", nargs="?", const="true", metavar="true|raw")
    for name in REFUSED:
        p.add_argument(f"--{name}", dest=name.replace("-", "_"), nargs="?", const="true")
    with contextlib.suppress(argparse.ArgumentError):  # a parent parser may own -v
        p.add_argument("-v", "--v", dest="proxy_v", type=int, metavar="LEVEL", help="verbosity")
    for flag in FLAGS:
        where = flag.attr or "not implemented; ignored"
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if flag.kind == "bool" else {}
        if flag.name == "proxy-mode":
            where = f"{', '.join(MODES)}; empty means iptables"
        elif flag.name == "node-routes":
            where = f"pykubelet's own: {', '.join(NODE_ROUTES)}; works with --config too"
        p.add_argument(
            f"--{flag.name}", dest=flag.dest, action="append", metavar=flag.kind.upper(),
            help=f"({where})", **extra,
        )  # fmt: skip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`pykubelet proxy`: the same flags as `kube-proxy`."""
    p = sub.add_parser(
        "proxy",
        help="run the Service proxy and node routes (kube-proxy's job)",
        description="Programs Service rules; takes kube-proxy's flags and --config.",
    )
    add_flags(p)
    p.set_defaults(func=run)


def _value(flag: ProxyFlag, text: str) -> object:
    where = f"--{flag.name}"
    try:
        if flag.kind == "bool":
            return go_bool(text)
        if flag.kind == "int":
            return go_int(text)
        if flag.kind == "float":
            return float(text)
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    if flag.kind == "duration":
        return _duration(text, where)
    if flag.kind == "list":
        return tuple(a.strip() for a in text.split(",") if a.strip())
    return text


def _apply(out: dict[str, Any], flag: ProxyFlag, value: object, mode: str, note: Note) -> None:
    if flag.name.startswith("ipvs-") and mode != "ipvs":
        return  # upstream: --ipvs-*sync-period only in ipvs mode, --iptables-* otherwise
    if flag.name.startswith("iptables-") and flag.kind == "duration" and mode == "ipvs":
        return
    if flag.name in ("healthz-port", "metrics-port"):
        if value == 0:
            out[flag.attr] = ""  # upstream: a port of 0 turns the server off
        return
    if value == ("primary",):
        raise SettingsError(
            '--nodeport-addresses: "primary" is not implemented by pykubelet: NodePorts would '
            "be open on every local address instead"
        )
    out[flag.attr] = value


def _given(args: argparse.Namespace) -> list[tuple[ProxyFlag, str]]:
    return [(f, getattr(args, f.dest)[-1]) for f in FLAGS if getattr(args, f.dest, None)]


def settings_from_args(args: argparse.Namespace, *, note: Note | None = None) -> ProxySettings:
    """The config file (if any; then only --hostname-override, --cleanup, -v and
    --node-routes still apply, as upstream), else the flags over upstream's defaults. Flags
    pykubelet does not implement are warnings naming them."""
    note = note or log.warning
    for name in REFUSED:
        if getattr(args, name.replace("-", "_"), None) not in (None, "false"):
            raise SettingsError(f"--{name}: not implemented by pykubelet")
    config = getattr(args, "config", None)
    base = from_config_file(Path(config), note=note) if config else ProxySettings()
    out: dict[str, Any] = {}
    given = _given(args)
    mode_text = next((text for f, text in given if f.name == "proxy-mode"), None)
    mode = base.mode if config or mode_text is None else (mode_text or "iptables")
    for flag, text in given:
        if config and not flag.always:
            note(f"--{flag.name}: ignored because --config is given (as kube-proxy does)")
            continue
        value = _value(flag, text)
        if flag.attr:
            _apply(out, flag, value, mode, note)
        elif _value(flag, flag.default) != value and value not in ("", "rr"):
            note(f"--{flag.name}: not implemented by pykubelet; ignored")
    if out.get("mode") == "":
        out["mode"] = "iptables"
    if getattr(args, "proxy_v", None) is not None:
        out["verbosity"] = args.proxy_v
    return validate(replace(base, **out))


def describe(s: ProxySettings) -> str:
    return " ".join(f"{f.name}={getattr(s, f.name)}" for f in fields(s) if f.name not in ("extra",))


def run(args: argparse.Namespace, *, prog: str = "pykubelet proxy") -> int:
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.verbosity >= 4:
        logging.getLogger().setLevel(logging.DEBUG)
    from net.proxy.daemon import main as run_daemon

    return run_daemon(settings)


def version(args: argparse.Namespace) -> str | None:
    """What --version prints (`Kubernetes v1.36.3`), or None when not asked for."""
    value = getattr(args, "version", None)
    if value is None or value.startswith("v"):
        return None  # --version=vX.Y.Z only sets the version upstream reports
    if value == "raw":
        return f'version.Info{{GitVersion:"{KUBERNETES_VERSION}"}}'
    try:
        return f"Kubernetes {KUBERNETES_VERSION}" if go_bool(value) else None
    except ValueError:
        return None


def main(argv: Sequence[str]) -> int:
    """Entry for tests: parse `argv` as `pykubelet proxy ARGS` would."""
    parser = argparse.ArgumentParser(prog="pykubelet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["proxy", *argv])
    code: int = args.func(args)
    return code


def kube_proxy_main(argv: Sequence[str] | None = None) -> int:
    """The `kube-proxy` console script."""
    parser = argparse.ArgumentParser(
        prog="kube-proxy",
        usage="%(prog)s [flags]",
        allow_abbrev=False,
        description="pykubelet's Service proxy, started as the upstream kube-proxy is.",
    )
    add_flags(parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args([_normalize(a) for a in argv])
    text = version(args)
    if text is not None:
        print(text)
        return 0
    level = args.proxy_v or 0
    logging.basicConfig(
        level=logging.DEBUG if level >= 4 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(args, prog="kube-proxy")


def _normalize(arg: str) -> str:
    """pflag reads '_' in flag names as '-'."""
    if not arg.startswith("--"):
        return arg
    name, eq, value = arg.partition("=")
    return name.replace("_", "-") + eq + value


if __name__ == "__main__":
    sys.exit(kube_proxy_main())
