"""Host cleanup primitives for the harness: mounts under a directory, links, named netns, chains.
Each function is idempotent and reports what it removed; none of them decides what to remove.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def _unescape(field: str) -> str:
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first."""
    prefix = str(directory.resolve()).rstrip("/")
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount_all(points: list[str]) -> list[str]:
    """Unmount each point (lazily if busy); returns those that were unmounted."""
    done = []
    for point in points:
        r = subprocess.run(["umount", point], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["umount", "-l", point], capture_output=True, text=True)
        if r.returncode == 0:
            done.append(point)
        else:
            log.warning("could not unmount %s: %s", point, r.stderr.strip())
    return done


def delete_link(name: str, netns: str | None = None) -> bool:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    r = subprocess.run([*prefix, "link", "del", name], capture_output=True, text=True)
    return r.returncode == 0


def delete_netns(name: str) -> bool:
    r = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True)
    return r.returncode == 0


def netns_names() -> list[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def delete_chains(table: str, prefix: str) -> int:
    """Remove every jump to, and then every chain named `prefix`* in, `table` (iptables in use)."""
    r = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True)
    if r.returncode != 0:
        return 0
    chains = [ln[1:].split()[0] for ln in r.stdout.splitlines() if ln.startswith(":" + prefix)]
    if not chains:
        return 0
    for line in r.stdout.splitlines():
        if not line.startswith("-A "):
            continue
        rule = shlex.split(line)[1:]
        target = rule[rule.index("-j") + 1] if "-j" in rule[:-1] else None
        if target in chains and rule[0] not in chains:
            subprocess.run(["iptables", "-t", table, "-D", *rule], capture_output=True)
    for chain in chains:
        subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
    for chain in chains:
        subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
    return len(chains)


def release_netns_dir() -> bool:
    """Unmount /run/netns when no namespace is left in it (`ip netns add` bind-mounts it)."""
    base = Path("/run/netns")
    if not base.is_dir() or any(base.iterdir()):
        return False
    if "/run/netns" not in mounts_under(base):
        return False
    return bool(unmount_all(["/run/netns"]))
