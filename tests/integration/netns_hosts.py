"""Test "hosts": network namespaces joined by veth pairs to a bridge in a switch namespace.
Made and removed by the tests themselves; never touches the host's own interfaces.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kubelet.cluster import hostops


def sh(*args: str) -> str:
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


@dataclass(frozen=True)
class Host:
    """One test host: a named netns with `eth0` on the shared segment."""

    netns: str
    address: str

    def run(self, *args: str) -> str:
        return sh("nsenter", f"--net=/run/netns/{self.netns}", "--", *args)


@contextmanager
def hosts(
    count: int, *, subnet: str = "10.123.0", prefix: str | None = None
) -> Iterator[list[Host]]:
    """`count` hosts at subnet.1, .2, ... on one L2 segment; all removed on exit, even on error."""
    tag = prefix or f"pkt{os.getpid() % 100000}"
    switch = f"{tag}-sw"
    made: list[str] = []
    try:
        sh("ip", "netns", "add", switch)
        made.append(switch)
        sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", switch, "link", "set", "br0", "up")
        out = []
        for i in range(1, count + 1):
            name = f"{tag}-h{i}"
            sh("ip", "netns", "add", name)
            made.append(name)
            sh(
                "ip",
                "-n",
                switch,
                "link",
                "add",
                f"p{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                name,
            )
            sh("ip", "-n", switch, "link", "set", f"p{i}", "master", "br0", "up")
            sh("ip", "-n", name, "addr", "add", f"{subnet}.{i}/24", "dev", "eth0")
            sh("ip", "-n", name, "link", "set", "eth0", "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")
            out.append(Host(name, f"{subnet}.{i}"))
        yield out
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        hostops.release_netns_dir()
