"""Host iptables rules of one pod network: masquerade out of the cluster CIDR, hostPort DNAT.
Owns only chains named PYK-<bridge>-*; uses the backend the host uses (nf_tables or legacy)."""

from __future__ import annotations

import functools
import logging
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from net import names

log = logging.getLogger(__name__)


class IptablesError(Exception):
    """An iptables command failed; the message carries its stderr."""


@functools.cache
def binary() -> str:
    """`iptables-nft` or `iptables-legacy` as `iptables -V` reports the default, as kube-proxy
    does; plain `iptables` when the variant binaries are missing."""
    out = subprocess.run(["iptables", "-V"], capture_output=True, text=True).stdout
    variant = "iptables-legacy" if "legacy" in out else "iptables-nft"
    return variant if shutil.which(variant) else "iptables"


def run(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [binary(), "-w", "5", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise IptablesError(f"{shlex.join(cmd)}: {r.stderr.strip()}")
    return r


def _ensure_chain(table: str, chain: str) -> None:
    if run(["-t", table, "-S", chain], check=False).returncode != 0:
        r = run(["-t", table, "-N", chain], check=False)
        if r.returncode != 0 and "exists" not in r.stderr:
            raise IptablesError(r.stderr.strip())


def _ensure_rule(table: str, chain: str, rule: Sequence[str], *, first: bool = False) -> None:
    if run(["-t", table, "-C", chain, *rule], check=False).returncode != 0:
        run(["-t", table, "-I" if first else "-A", chain, *rule])


def ensure_network(bridge: str, pod_cidr: str, cluster_cidr: str) -> None:
    """Masquerade traffic from the pod CIDR to anywhere outside the cluster CIDR, and the hook
    of the hostPort chain in nat PREROUTING and OUTPUT (destinations local to the host)."""
    masq, hp = names.masquerade_chain(bridge), names.hostport_chain(bridge)
    _ensure_chain("nat", masq)
    _ensure_chain("nat", hp)
    comment = ["-m", "comment", "--comment", f"pykubelet {bridge}"]
    _ensure_rule("nat", masq, ["!", "-d", cluster_cidr, *comment, "-j", "MASQUERADE"])
    _ensure_rule("nat", "POSTROUTING", ["-s", pod_cidr, *comment, "-j", masq])
    local = ["-m", "addrtype", "--dst-type", "LOCAL", *comment, "-j", hp]
    _ensure_rule("nat", "PREROUTING", local, first=True)
    _ensure_rule("nat", "OUTPUT", local, first=True)


@dataclass(frozen=True)
class PortMapping:
    """One runtimeConfig.portMappings entry (hostPort -> containerPort)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> PortMapping:
        """Spec keys (hostPort) or Go field names (HostPort, as containerd's go-cni sends)."""
        entry = {k[:1].lower() + k[1:]: v for k, v in raw.items()}
        host, cont = entry.get("hostPort"), entry.get("containerPort")
        proto = str(entry.get("protocol") or "tcp").lower()
        if not isinstance(host, int) or not isinstance(cont, int):
            raise ValueError(f"portMapping needs integer hostPort/containerPort: {entry!r}")
        if not (0 < host < 65536 and 0 < cont < 65536) or proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid portMapping {entry!r}")
        return cls(host, cont, proto, str(entry.get("hostIP") or ""))


def _hostport_rule(m: PortMapping, pod_ip: str, container_id: str) -> list[str]:
    dst = ["-d", m.host_ip] if m.host_ip and m.host_ip not in ("0.0.0.0", "::") else []
    return [
        *dst,
        "-p",
        m.protocol,
        "--dport",
        str(m.host_port),
        "-m",
        "comment",
        "--comment",
        f"pykubelet {container_id}",
        "-j",
        "DNAT",
        "--to-destination",
        f"{pod_ip}:{m.container_port}",
    ]


def add_hostports(
    bridge: str, pod_ip: str, container_id: str, mappings: Iterable[PortMapping]
) -> int:
    """DNAT each host port to pod_ip:containerPort; all or nothing (rolled back on failure)."""
    chain, added = names.hostport_chain(bridge), 0
    try:
        for m in mappings:
            _ensure_rule("nat", chain, _hostport_rule(m, pod_ip, container_id))
            added += 1
    except IptablesError:
        remove_hostports(bridge, container_id)
        raise
    return added


def hostport_rules(bridge: str, container_id: str = "") -> list[list[str]]:
    """The rules (as -A argument lists) of the hostPort chain, for one container or all."""
    r = run(["-t", "nat", "-S", names.hostport_chain(bridge)], check=False)
    rules = []
    for line in r.stdout.splitlines():
        if line.startswith("-A ") and (not container_id or f"pykubelet {container_id}" in line):
            rules.append(shlex.split(line)[2:])
    return rules


def remove_hostports(bridge: str, container_id: str) -> int:
    """Delete the container's DNAT rules; 0 when it had none."""
    chain, removed = names.hostport_chain(bridge), 0
    for rule in hostport_rules(bridge, container_id):
        if run(["-t", "nat", "-D", chain, *rule], check=False).returncode == 0:
            removed += 1
    return removed


def remove_network(bridge: str) -> int:
    """Remove the jumps to, and the chains of, this network (used by `down` and tests)."""
    prefix = names.chain_prefix(bridge)
    r = subprocess.run([binary() + "-save", "-t", "nat"], capture_output=True, text=True)
    chains = [ln[1:].split()[0] for ln in r.stdout.splitlines() if ln.startswith(":" + prefix)]
    for line in r.stdout.splitlines():
        rule = shlex.split(line)[1:] if line.startswith("-A ") else []
        if "-j" in rule[:-1] and rule[rule.index("-j") + 1] in chains and rule[0] not in chains:
            run(["-t", "nat", "-D", *rule], check=False)
    for flag in ("-F", "-X"):
        for chain in chains:
            run(["-t", "nat", flag, chain], check=False)
    return len(chains)
