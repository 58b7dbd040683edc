"""The `kubelet` command: the node agent started with the upstream kubelet's command line, the way
systemd units and kubeadm start the Go binary; and the start-up both it and `pykubelet run` share
(configuration, swap check, then the agent). No agent logic here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
from collections.abc import Sequence

from kube import KUBERNETES_VERSION
from kubelet import swap
from kubelet.config import ConfigError, RunConfig, add_run_flags, load, normalize_argv
from kubelet.config.flagvalues import go_bool

log = logging.getLogger(__name__)
EXIT_FAILED = 1
"""What upstream's kubelet exits with when start-up fails."""


def build_parser(prog: str = "kubelet") -> argparse.ArgumentParser:
    """The kubelet's flags (all of upstream's; see `kubelet --help`), -h and --version."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage="%(prog)s [flags]",
        allow_abbrev=False,
        description="pykubelet, started as the upstream kubelet is: the node agent that "
        "registers this node and runs its pods through CRI. Flags override --config and the "
        "--config-dir drop-ins; flags pykubelet does not implement are accepted with a warning.",
    )
    add_run_flags(parser)
    return parser


def version_request(values: list[str] | None) -> str | None:
    """What --version asks for: "true", "raw", or None (not asked; --version=false, or
    --version=vX.Y.Z, which upstream takes as the version to report and does not print)."""
    if not values:
        return None
    value = values[-1]
    if value == "raw":
        return "raw"
    if value.startswith("v"):
        return None
    try:
        return "true" if go_bool(value) else None
    except ValueError:
        message = f'invalid value "{value}": want true, false or raw'
        raise ConfigError("--version", message) from None


def version_text(kind: str) -> str:
    """`Kubernetes v1.36.3` (what kubeadm's preflight parses), or the raw form."""
    if kind != "raw":
        return f"Kubernetes {KUBERNETES_VERSION}"
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return (
        f'version.Info{{Major:"{major}", Minor:"{minor}", GitVersion:"{KUBERNETES_VERSION}", '
        f'GitCommit:"", GitTreeState:"", BuildDate:"", GoVersion:"", '
        f'Compiler:"cpython", Platform:"linux/{machine}"}}'
    )


def configure_logging(verbosity: int) -> None:
    """Log lines on stderr (journald keeps them under a unit); 4 and up is debug."""
    logging.basicConfig(
        level=logging.DEBUG if verbosity >= 4 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbosity >= 6 else logging.WARNING)


def _cgroup_v2() -> bool | None:
    from kubelet.cgroups import host

    try:
        return host.detect().version == host.V2
    except (host.CgroupSetupError, OSError):
        return None


def start(config: RunConfig) -> None:
    """Check the node against the configuration (swap), then run the agent until stopped.
    Raises swap.SwapError."""
    from kubelet.agent import Agent

    swap.check(config.kubelet, cgroup_v2=_cgroup_v2(), note=log.warning)
    asyncio.run(Agent(config).run())


def run(args: argparse.Namespace, *, prog: str, config_exit: int = EXIT_FAILED) -> int:
    """Load the configuration from parsed flags and run the node agent; a bad setting or a node
    that does not fit it is one line on stderr and a non-zero exit. --version prints the
    release instead."""
    try:
        asked = version_request(getattr(args, "version", None))
        if asked is not None:
            print(version_text(asked))
            return 0
        config = load(args)
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return config_exit
    logging.getLogger().setLevel(logging.DEBUG if config.verbosity >= 4 else logging.INFO)
    try:
        start(config)
    except swap.SwapError as e:
        print(f"{prog}: failed to run Kubelet: {e}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `kubelet` console script."""
    args = build_parser().parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    if not args.version:
        configure_logging(getattr(args, "verbosity", 0))
    return run(args, prog="kubelet")


if __name__ == "__main__":
    sys.exit(main())
