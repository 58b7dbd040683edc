"""Files pykubelet puts where the runtime looks: the plugin launcher and the conflist.
Writes atomically into the given directories only; never starts or signals the runtime."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from net.cni.protocol import PLUGIN_TYPE

CONFLIST_NAME = "05-pykubelet.conflist"
NETWORK_NAME = "pykubelet"
SOURCE_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write when the content differs; True when the file changed."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def launcher_text(python: str = sys.executable, root: Path = SOURCE_ROOT) -> str:
    """The exec'd plugin: isolated (-I) and without site (-S), stdlib plus this checkout."""
    return (
        f"#!{python} -IS\n"
        "# pykubelet CNI plugin launcher (written by pykubelet; forwards to the agent).\n"
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from net.cni.plugin import main\n"
        "sys.exit(main())\n"
    )


def install_plugin(bin_dir: Path, python: str = sys.executable) -> Path:
    """Our launcher, plus a link to the system `loopback` plugin: containerd 1.6 (go-cni)
    always runs a loopback network before ours and fails the sandbox when it is missing."""
    path = bin_dir / PLUGIN_TYPE
    _atomic_write(path, launcher_text(python), 0o755)
    loopback = bin_dir / "loopback"
    system = next((d / "loopback" for d in LOOPBACK_DIRS if (d / "loopback").exists()), None)
    if system is not None and not loopback.exists():
        tmp = bin_dir / f".loopback.tmp{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(system)
        os.replace(tmp, loopback)
    return path


def conflist_text(
    *,
    bridge: str,
    pod_cidr: str,
    cluster_cidr: str,
    socket: Path,
    dns: dict[str, object] | None = None,
) -> str:
    plugin: dict[str, object] = {
        "type": PLUGIN_TYPE,
        "bridge": bridge,
        "podCIDR": pod_cidr,
        "socket": str(socket),
        "capabilities": {"portMappings": True},
    }
    if cluster_cidr:
        plugin["clusterCIDR"] = cluster_cidr
    if dns:
        plugin["dns"] = dns
    doc = {"cniVersion": "1.0.0", "name": NETWORK_NAME, "plugins": [plugin]}
    return json.dumps(doc, indent=2) + "\n"


def write_conflist(conf_dir: Path, text: str) -> bool:
    return _atomic_write(conf_dir / CONFLIST_NAME, text)
