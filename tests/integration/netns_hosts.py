"""Test "hosts": network namespaces joined by veth pairs to a bridge in a switch namespace
(cluster.segment, the code `up --nodes` uses); removed on exit, even on error."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cluster import segment


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
    members = [segment.Member(f"{tag}-h{i}", f"{subnet}.{i}/24") for i in range(1, count + 1)]
    try:
        segment.build(switch, members)
        yield [Host(m.netns, m.address) for m in members]
    finally:
        segment.remove(switch, [m.netns for m in members])
