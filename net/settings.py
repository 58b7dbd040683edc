"""pykubelet-specific network settings (no KubeletConfiguration field): env vars and flags.
Parsing only; `pykubelet run` passes the flags in, or the harness sets the PYKUBELET_* vars."""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from net import names

ENV = {
    "cni_conf_dir": "PYKUBELET_CNI_CONF_DIR",
    "cni_bin_dir": "PYKUBELET_CNI_BIN_DIR",
    "bridge": "PYKUBELET_CNI_BRIDGE",
    "cluster_cidr": "PYKUBELET_CLUSTER_CIDR",
}
DEFAULT_BRIDGE = "pykbr0"
SUN_PATH_MAX = 107


@dataclass(frozen=True)
class NetworkSettings:
    """Where the runtime reads CNI configs and plugins, and the node network's choices."""

    cni_conf_dir: Path
    cni_bin_dir: Path | None
    bridge: str = DEFAULT_BRIDGE
    cluster_cidr: str = ""
    data_dir: Path = Path("/var/lib/kubelet/network")

    @property
    def socket(self) -> Path:
        """The plugin socket under data_dir, or under /run when that path is too long."""
        path = self.data_dir / "cni.sock"
        if len(str(path)) <= SUN_PATH_MAX:
            return path
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        return Path("/run/pykubelet") / f"cni-{digest}.sock"


def add_network_flags(parser: argparse.ArgumentParser) -> None:
    """The `pykubelet run` flags (defaults come from the PYKUBELET_* environment)."""
    add = parser.add_argument
    add("--cni-conf-dir", default=None, metavar="DIR", help="runtime's CNI conf dir")
    add("--cni-bin-dir", default=None, metavar="DIR", help="where to install pykubelet-cni")
    add("--cni-bridge", default=None, metavar="NAME", help=f"node bridge ({DEFAULT_BRIDGE})")
    add("--cluster-cidr", default=None, metavar="CIDR", help="pod network of the cluster")


def resolve(
    root_dir: Path, args: argparse.Namespace | None = None, env: Mapping[str, str] = os.environ
) -> NetworkSettings | None:
    """Flags over environment; None when no CNI conf dir is given (the network is then left
    to whatever the runtime has). Raises ValueError naming a bad setting."""
    values = {
        k: (getattr(args, k, None) if args is not None else None) or env.get(v) or ""
        for k, v in ENV.items()
    }
    if not values["cni_conf_dir"]:
        return None
    bridge = values["bridge"] or DEFAULT_BRIDGE
    try:
        names.check_ifname(bridge)
        cidr = str(ipaddress.ip_network(values["cluster_cidr"])) if values["cluster_cidr"] else ""
    except ValueError as e:
        raise ValueError(f"network settings: {e}") from None
    return NetworkSettings(
        cni_conf_dir=Path(values["cni_conf_dir"]),
        cni_bin_dir=Path(values["cni_bin_dir"]) if values["cni_bin_dir"] else None,
        bridge=bridge,
        cluster_cidr=cidr,
        data_dir=root_dir / "network",
    )
