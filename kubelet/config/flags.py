"""The `pykubelet run` command line: upstream kubelet flag names, and how they combine with the
config file into one RunConfig. Reads the --config file only; never touches the node otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from kubelet.config.decode import load_file, validate
from kubelet.config.errors import ConfigError
from kubelet.config.labels import (
    check_cidr,
    check_dns_subdomain,
    check_endpoint,
    parse_labels,
    parse_node_ips,
    parse_taints,
)
from kubelet.config.model import DEFAULT_RUNTIME_ENDPOINT, KubeletConfiguration

DEFAULT_ROOT_DIR = Path("/var/lib/kubelet")
T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    """Everything `pykubelet run` starts from: the flags that have no config-file field, and
    the KubeletConfiguration with the overriding flags applied."""

    kubelet: KubeletConfiguration
    """The file's settings (or defaults), with flag overrides applied and re-validated."""
    node_name: str
    """This Node's name: --hostname-override, else the machine's hostname, lower-cased."""
    config_file: Path | None = None
    """The --config file read, if any."""
    kubeconfig: Path | None = None
    """--kubeconfig: credentials for the apiserver; None means standalone mode."""
    bootstrap_kubeconfig: Path | None = None
    """--bootstrap-kubeconfig: used to obtain a client certificate when kubeconfig is missing."""
    node_ips: tuple[str, ...] = ()
    """--node-ip: the Node's address(es), at most one per IP family; empty means detect."""
    root_dir: Path = DEFAULT_ROOT_DIR
    """--root-dir: the agent's state directory (pods, volumes, plugins)."""
    cert_dir: Path = DEFAULT_ROOT_DIR / "pki"
    """--cert-dir: where generated or rotated certificates are kept."""
    verbosity: int = 0
    """-v/--v: log verbosity level (4 and up is debug)."""


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Add the kubelet flags `pykubelet run` understands (upstream names) to `parser`. Values
    stay raw strings here; `load` checks them and names the flag when one is bad."""
    add = parser.add_argument
    add("--config", type=Path, default=None, metavar="FILE", help="KubeletConfiguration file")
    add("--kubeconfig", type=Path, default=None, metavar="FILE", help="apiserver credentials")
    add(
        "--bootstrap-kubeconfig",
        type=Path,
        default=None,
        metavar="FILE",
        help="credentials to request a client certificate with",
    )
    add("--hostname-override", default="", metavar="NAME", help="node name to use")
    add("--node-ip", default="", metavar="IP[,IP]", help="node IP address(es), dual-stack allowed")
    add("--node-labels", default="", metavar="K=V,...", help="labels to register the node with")
    add(
        "--register-with-taints",
        default=None,
        metavar="K=V:EFFECT,...",
        help="taints to register the node with (overrides registerWithTaints)",
    )
    add("--root-dir", type=Path, default=DEFAULT_ROOT_DIR, metavar="DIR", help="state directory")
    add(
        "--container-runtime-endpoint",
        default=None,
        metavar="URL",
        help=f"CRI endpoint (overrides the config file; default {DEFAULT_RUNTIME_ENDPOINT})",
    )
    add("--pod-cidr", default=None, metavar="CIDR", help="pod CIDR for standalone mode")
    add("--cert-dir", type=Path, default=None, metavar="DIR", help="default <root-dir>/pki")
    with contextlib.suppress(argparse.ArgumentError):  # the parser may define -v/--v already
        add("-v", "--v", dest="verbosity", type=int, default=argparse.SUPPRESS, metavar="LEVEL")


def _flag(name: str, parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except ValueError as e:
        raise ConfigError(f"--{name}", str(e)) from None


def apply_flags(config: KubeletConfiguration, args: argparse.Namespace) -> KubeletConfiguration:
    """Overlay the flags that upstream maps onto config fields, then re-validate. Node labels
    from --node-labels are merged over the file's nodeLabels, key by key."""
    changes: dict[str, Any] = {}
    if args.container_runtime_endpoint is not None:
        endpoint = args.container_runtime_endpoint
        changes["container_runtime_endpoint"] = _flag(
            "container-runtime-endpoint", check_endpoint, endpoint
        )
    if args.pod_cidr is not None:
        changes["pod_cidr"] = _flag("pod-cidr", check_cidr, args.pod_cidr) if args.pod_cidr else ""
    if args.register_with_taints is not None:
        changes["register_with_taints"] = _flag(
            "register-with-taints", parse_taints, args.register_with_taints
        )
    if args.node_labels:
        labels = _flag("node-labels", parse_labels, args.node_labels)
        changes["node_labels"] = MappingProxyType({**config.node_labels, **labels})
    if not changes:
        return config
    merged = dataclasses.replace(config, **changes)
    validate(merged)
    return merged


def node_name(override: str, hostname: Callable[[], str] = socket.gethostname) -> str:
    """The Node's name as upstream picks it: the override, else the machine's hostname;
    trimmed and lower-cased; it must be a DNS subdomain."""
    source = "--hostname-override" if override.strip() else "hostname"
    name = (override.strip() or hostname()).strip().lower()
    if not name:
        raise ConfigError(source, "empty hostname is invalid")
    try:
        check_dns_subdomain(name)
    except ValueError as e:
        raise ConfigError(source, f"{e}: not a valid node name") from None
    return name


def load(
    args: argparse.Namespace, *, hostname: Callable[[], str] = socket.gethostname
) -> RunConfig:
    """Check the parsed `run` flags, read the --config file (defaults when not given), apply
    the overriding flags and return the RunConfig. Raises ConfigError naming the bad setting.
    `hostname` is asked for the machine's name only when --hostname-override is empty."""
    kubelet = apply_flags(load_file(args.config), args)
    node_ips = _flag("node-ip", parse_node_ips, args.node_ip) if args.node_ip.strip() else ()
    root_dir: Path = args.root_dir
    return RunConfig(
        kubelet=kubelet,
        node_name=node_name(args.hostname_override, hostname),
        config_file=args.config,
        kubeconfig=args.kubeconfig,
        bootstrap_kubeconfig=args.bootstrap_kubeconfig,
        node_ips=node_ips,
        root_dir=root_dir,
        cert_dir=args.cert_dir if args.cert_dir is not None else root_dir / "pki",
        verbosity=getattr(args, "verbosity", 0),
    )
