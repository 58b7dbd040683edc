"""The conntrack table as the proxy sees it: which UDP entries a change of endpoints leaves stale
(pure), their removal with the `conntrack` tool, and parsing its `-L` listing. No Services here.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

Runner = Callable[..., "subprocess.CompletedProcess[str]"]
_DELETED_RE = re.compile(r"(\d+) flow entries have been deleted")

FrontendKey = tuple[str, int, str]
"""(destination IP, destination port, protocol) of a Service frontend: a ClusterIP, an
externalIP or load-balancer IP with its port, or ("", nodePort, proto) for a NodePort."""


@dataclass(frozen=True, order=True)
class Flush:
    """One `conntrack -D`: entries of `proto` to a frontend, optionally only those NATed to
    `endpoint` (its IP)."""

    proto: str
    dst: str
    """Original destination IP; "" with a NodePort (any local address)."""
    port: int
    endpoint: str = ""

    def args(self) -> list[str]:
        out = ["-D", "-p", self.proto.lower()]
        if self.dst:
            out += ["--orig-dst", self.dst]
        out += ["--orig-port-dst", str(self.port)]
        if self.endpoint:
            out += ["--dst-nat", self.endpoint]
        return out


def stale_flushes(
    before: Mapping[FrontendKey, frozenset[str]], after: Mapping[FrontendKey, frozenset[str]]
) -> list[Flush]:
    """What to flush after a sync, given the ready endpoint IPs of every UDP/SCTP frontend
    before and after it. As upstream: entries NATed to an endpoint that went away (they would
    keep sending to it); entries of a frontend that had no endpoint and now has one (they were
    made without NAT and would swallow the traffic); entries of a frontend that is gone."""
    out: set[Flush] = set()
    for key, old in before.items():
        ip, port, proto = key
        new = after.get(key)
        if new is None:
            if old:
                out.add(Flush(proto, ip, port))
            continue
        for endpoint in old - new:
            out.add(Flush(proto, ip, port, endpoint))
    for key, new in after.items():
        ip, port, proto = key
        if new and not before.get(key):
            out.add(Flush(proto, ip, port))
    return sorted(out)


class Conntrack:
    """Runs the `conntrack` tool (in the caller's network namespace)."""

    def __init__(self, *, run: Runner = subprocess.run, binary: str = "conntrack") -> None:
        self._run = run
        self._binary = binary

    def flush(self, flushes: Iterable[Flush]) -> int:
        """Delete the entries; returns how many were deleted. Failures are logged, not raised:
        a stale entry is a nuisance, a crashed sync loop is worse."""
        total = 0
        for item in flushes:
            try:
                r = self._run([self._binary, *item.args()], capture_output=True, text=True)
            except OSError as exc:
                log.warning("conntrack not runnable: %s", exc)
                return total
            m = _DELETED_RE.search(r.stderr)
            if m:
                total += int(m.group(1))
            elif r.returncode != 0:
                log.warning("conntrack %s failed: %s", " ".join(item.args()), r.stderr.strip())
        return total

    def list(self, dst: str, proto: str | None = None) -> str:
        """`conntrack -L` text of the entries whose original destination is `dst`."""
        args = [self._binary, "-L", "--orig-dst", dst]
        if proto:
            args += ["-p", proto.lower()]
        try:
            r = self._run(args, capture_output=True, text=True)
        except OSError:
            return ""
        return r.stdout if r.returncode == 0 else ""


_PROTOS = {"tcp", "udp", "sctp", "icmp", "udplite", "dccp", "gre", "icmpv6", "unknown"}


@dataclass(frozen=True)
class ConntrackEntry:
    proto: str
    timeout: int
    state: str  # "" for stateless protocols (udp)
    src: str
    dst: str
    sport: int
    dport: int
    reply_src: str
    reply_dst: str
    reply_sport: int
    reply_dport: int
    flags: tuple[str, ...] = ()  # ASSURED, UNREPLIED...

    def text(self) -> str:
        state = f" {self.state}" if self.state else ""
        flags = "".join(f" [{f}]" for f in self.flags)
        return (
            f"{self.proto}{state} {self.src}:{self.sport} -> {self.dst}:{self.dport} "
            f"=> {self.reply_src}:{self.reply_sport} ({self.timeout}s){flags}"
        )


def parse_conntrack(text: str) -> list[ConntrackEntry]:
    """Entries from `conntrack -L [-o extended]` output; lines that don't parse are skipped."""
    out: list[ConntrackEntry] = []
    for line in text.splitlines():
        entry = _parse_line(line.split())
        if entry is not None:
            out.append(entry)
    return out


def _parse_line(tokens: list[str]) -> ConntrackEntry | None:
    idx = next((i for i, t in enumerate(tokens) if t in _PROTOS), None)
    if idx is None or len(tokens) < idx + 3:
        return None
    proto = tokens[idx]
    try:
        timeout = int(tokens[idx + 2])
    except ValueError:
        return None
    rest = tokens[idx + 3 :]
    state = rest[0] if rest and "=" not in rest[0] and not rest[0].startswith("[") else ""
    tuples: list[dict[str, str]] = [{}]
    flags: list[str] = []
    for tok in rest:
        if tok.startswith("[") and tok.endswith("]"):
            flags.append(tok[1:-1])
            continue
        key, sep, value = tok.partition("=")
        if not sep or key not in ("src", "dst", "sport", "dport"):
            continue
        if key in tuples[-1]:
            tuples.append({})
        tuples[-1][key] = value
    if len(tuples) < 2:
        return None
    orig, reply = tuples[0], tuples[1]
    try:
        return ConntrackEntry(
            proto,
            timeout,
            state,
            orig["src"],
            orig["dst"],
            int(orig.get("sport", 0)),
            int(orig.get("dport", 0)),
            reply["src"],
            reply["dst"],
            int(reply.get("sport", 0)),
            int(reply.get("dport", 0)),
            tuple(flags),
        )
    except (KeyError, ValueError):
        return None
