"""What the proxy reads of the host it runs on (this netns's IPv4 addresses, the node IPs of its
rules) and the one sysctl it sets (route_localnet, for NodePorts on 127.0.0.1). Knows no modes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

IPVS_DUMMY_INTERFACE = "kube-ipvs0"


def local_ipv4(
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> tuple[str, ...]:
    """This netns's IPv4 addresses (loopback and IPVS mode's kube-ipvs0 excluded), sorted;
    OSError when `ip` fails. kube-ipvs0 holds Service IPs, not node IPs: upstream's IPVS
    proxier skips it too (else NodePorts get virtual servers on every ClusterIP)."""
    r = run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"ip addr show: {r.stderr.strip() or f'exit status {r.returncode}'}")
    try:
        links = json.loads(r.stdout)
    except ValueError as exc:
        raise OSError(f"ip addr show: unreadable output ({exc})") from exc
    out = set()
    for link in links if isinstance(links, list) else ():
        if link.get("ifname") == IPVS_DUMMY_INTERFACE:
            continue
        for addr in link.get("addr_info") or ():
            try:
                ip = ipaddress.IPv4Address(addr.get("local"))
            except ValueError:
                continue
            if not ip.is_loopback:
                out.add(ip)
    return tuple(str(ip) for ip in sorted(out))


def ensure_route_localnet(proc_sys: Path = Path("/proc/sys")) -> bool:
    """net.ipv4.conf.all.route_localnet=1 in this netns (what NodePorts on 127.0.0.1 need);
    False, logged, when it cannot be set."""
    path = proc_sys / "net" / "ipv4" / "conf" / "all" / "route_localnet"
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as exc:
        log.warning("cannot set route_localnet=1, NodePorts on 127.0.0.1 won't work: %s", exc)
        return False
    return True
