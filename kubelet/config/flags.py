"""The kubelet command line (every upstream v1.36 flag, flagtable.py) and how it combines with
--config and --config-dir into one RunConfig, with upstream's precedence: defaults, then the
file, then the drop-ins in lexical order, then the flags. Reads those files only.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from kubelet.config import dropin, upstream
from kubelet.config.decode import from_dict, read_file, resolve_paths, verbosity
from kubelet.config.errors import ConfigError
from kubelet.config.flagtable import FLAGS, REPEATABLE, Flag
from kubelet.config.flagvalues import flag_value
from kubelet.config.labels import check_dns_subdomain, parse_labels, parse_node_ips
from kubelet.config.model import API_VERSION, KIND, KubeletConfiguration
from kubelet.config.schema import Codec, Note, Struct

log = logging.getLogger(__name__)
DEFAULT_ROOT_DIR = Path("/var/lib/kubelet")
T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    """Everything the node agent starts from: the flags that have no config-file field, and
    the KubeletConfiguration with the overriding flags applied."""

    kubelet: KubeletConfiguration
    """The file's settings (or defaults), drop-ins and flag overrides applied, validated."""
    node_name: str
    """This Node's name: --hostname-override, else the machine's hostname, lower-cased."""
    config_file: Path | None = None
    """The --config file read, if any."""
    config_dir: Path | None = None
    """The --config-dir whose *.conf drop-ins were merged over it, if any."""
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
    """-v/--v (else the file's logging.verbosity): log verbosity (4 and up is debug)."""


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Add every upstream kubelet flag to `parser`. Values stay raw strings (a list for flags
    given more than once); `load` converts them and names the flag when one is bad."""
    for flag in FLAGS:
        if flag.name == "v":
            with contextlib.suppress(argparse.ArgumentError):  # the parser may define -v already
                parser.add_argument(
                    "-v", "--v", dest="verbosity", type=int, default=argparse.SUPPRESS,
                    metavar="LEVEL", help="log verbosity (4 and up is debug)",
                )  # fmt: skip
            continue
        names = [f"--{flag.name}"] + ([f"-{flag.short}"] if flag.short else [])
        where = ".".join(flag.field) if flag.field else flag.run or "not implemented; ignored"
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if flag.kind == "bool" else {}
        parser.add_argument(
            *names, dest=flag.dest, action="append", default=None,
            metavar=flag.kind.upper(), help=f"({where})", **extra,
        )  # fmt: skip


def normalize_argv(argv: Iterable[str]) -> list[str]:
    """Flag names with '_' read as '-' (pflag's WordSepNormalizeFunc: --fail_swap_on)."""
    out = []
    for arg in argv:
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def _given(args: argparse.Namespace) -> list[tuple[Flag, list[str]]]:
    """The flags on the command line with every value given (in order)."""
    out = []
    for flag in FLAGS:
        values = getattr(args, flag.dest, None)
        if flag.name != "v" and values is not None:
            out.append((flag, values if flag.kind in REPEATABLE else [values[-1]]))
    return out


def _codec(keys: tuple[str, ...]) -> Codec | None:
    """The codec of the implemented KubeletConfiguration field at the YAML key path."""
    cls: type[Any] = KubeletConfiguration
    for i, key in enumerate(keys):
        spec = next((f for f in fields(cls) if f.metadata.get("yaml") == key), None)
        if spec is None:
            return None
        codec: Codec = spec.metadata["codec"]
        if i == len(keys) - 1:
            return codec
        if not isinstance(codec, Struct):
            return None
        cls = codec.cls
    return None


def _set(data: dict[str, Any], keys: tuple[str, ...], value: object) -> None:
    for key in keys[:-1]:
        child = data.get(key)
        data[key] = child = dict(child) if isinstance(child, dict) else {}
        data = child
    data[keys[-1]] = value


def _overlay(data: dict[str, Any], given: list[tuple[Flag, list[str]]], note: Note) -> None:
    """Apply the flags that map onto config fields (checked under the flag's name); flags for
    fields pykubelet does not implement, and flags that go nowhere, are warnings."""
    for flag, values in given:
        if flag.run:
            continue
        if not flag.field:
            if values[-1] != flag.default:
                note(f"--{flag.name}: not implemented by pykubelet; ignored")
            continue
        value = flag_value(flag, values)
        if upstream.is_upstream_only(flag.field):
            upstream.check_path(flag.field, value, f"--{flag.name}", note)
            continue
        codec = _codec(flag.field)
        if codec is not None:
            codec.decode(value, f"--{flag.name}")
        _set(data, flag.field, value)


def _flag(name: str, parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except ValueError as e:
        raise ConfigError(f"--{name}", str(e)) from None


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


class Notes:
    """Warning lines, each kept once, in order (decoding may see a setting more than once)."""

    def __init__(self) -> None:
        self.lines: dict[str, None] = {}

    def __call__(self, line: str) -> None:
        self.lines.setdefault(line, None)


def _last(args: argparse.Namespace, dest: str) -> str | None:
    values = getattr(args, dest, None)
    return values[-1] if values else None


def _kubelet_config(args: argparse.Namespace, note: Note) -> KubeletConfiguration:
    """--config, then --config-dir's drop-ins, then the flags; decoded and validated."""
    config = _last(args, "config")
    data: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    if config:
        path = Path(config)
        data = resolve_paths(read_file(path), path.parent.absolute())
    config_dir = _last(args, "config_dir")
    if config_dir:
        data = dropin.merge_dir(data, Path(config_dir), note)
    _overlay(data, _given(args), note)
    if getattr(args, "node_labels", None):
        merged: dict[str, str] = {}
        for text in args.node_labels:
            merged.update(_flag("node-labels", parse_labels, text))
        base = data.get("nodeLabels")
        data["nodeLabels"] = {**(base if isinstance(base, dict) else {}), **merged}
    return from_dict(data, note=note)


def load(
    args: argparse.Namespace,
    *,
    hostname: Callable[[], str] = socket.gethostname,
    note: Note | None = None,
) -> RunConfig:
    """Check the parsed flags, read --config (defaults when not given) and --config-dir, apply
    the overriding flags and return the RunConfig. Raises ConfigError naming the bad setting;
    warnings (fields and flags pykubelet ignores) go to `note`, default the log, once each.
    `hostname` is asked for the machine's name only when --hostname-override is empty."""
    notes = Notes()
    try:
        kubelet = _kubelet_config(args, notes)
    finally:
        for line in notes.lines:
            (note or log.warning)(line)
    node_ip = _last(args, "node_ip") or ""
    root_dir = Path(_last(args, "root_dir") or DEFAULT_ROOT_DIR)
    cert_dir = _last(args, "cert_dir")
    given = getattr(args, "verbosity", None)
    return RunConfig(
        kubelet=kubelet,
        node_name=node_name(_last(args, "hostname_override") or "", hostname),
        config_file=_path(_last(args, "config")),
        config_dir=_path(_last(args, "config_dir")),
        kubeconfig=_path(_last(args, "kubeconfig")),
        bootstrap_kubeconfig=_path(_last(args, "bootstrap_kubeconfig")),
        node_ips=_flag("node-ip", parse_node_ips, node_ip) if node_ip.strip() else (),
        root_dir=root_dir,
        cert_dir=Path(cert_dir) if cert_dir else root_dir / "pki",
        verbosity=given if given is not None else verbosity(kubelet),
    )


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None
