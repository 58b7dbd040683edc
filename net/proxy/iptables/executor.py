"""Applies rendered rules to the kernel: detects the iptables backend once and feeds one
`iptables-restore --noflush` per sync through stdin. Knows nothing of Services.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from net.proxy.iptables.saved import Saved, parse_saved

log = logging.getLogger(__name__)

Runner = Callable[..., "subprocess.CompletedProcess[str]"]
"""subprocess.run's shape; tests pass a fake."""

HINT_CHAINS = ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")
"""Chains the kubelet makes in the mangle table: where they are tells the backend the host uses."""
_LINE_RE = re.compile(r"(?:Error occurred at line: |line )(\d+)")
WAIT_SECONDS = 5


@dataclass(frozen=True)
class Backend:
    """One iptables backend: its name and its save/restore programs."""

    name: str
    """`nft` or `legacy`."""
    restore: str
    save: str
    iptables: str


NFT = Backend("nft", "iptables-nft-restore", "iptables-nft-save", "iptables-nft")
LEGACY = Backend("legacy", "iptables-legacy-restore", "iptables-legacy-save", "iptables-legacy")


class IptablesError(Exception):
    """A single iptables call failed; the message has the command and its stderr."""


class RestoreError(Exception):
    """iptables-restore refused the batch. It commits table by table: tables whose COMMIT came
    before the failing line are already in (the proxier rolls those back)."""

    def __init__(self, message: str, *, line: int | None, text: str | None, stderr: str) -> None:
        super().__init__(message)
        self.line = line
        """1-based line number of the input that failed, when iptables-restore said so."""
        self.text = text
        """That line of the input."""
        self.stderr = stderr


def _rule_count(save_output: str) -> int:
    return sum(1 for ln in save_output.splitlines() if ln.startswith("-A "))


def detect(
    run: Runner = subprocess.run, which: Callable[[str], str | None] = shutil.which
) -> Backend:
    """The backend the host uses, decided as upstream's iptables wrapper does: the one holding
    the kubelet's hint chains; else the one with more rules; else what `iptables -V` reports."""
    available = [b for b in (NFT, LEGACY) if which(b.save) and which(b.restore)]
    if len(available) == 1:
        return available[0]
    if not available:
        raise RuntimeError("neither iptables-nft-restore nor iptables-legacy-restore is installed")
    saves: dict[str, str] = {}
    for backend in available:
        r = run([backend.save], capture_output=True, text=True)
        saves[backend.name] = r.stdout if r.returncode == 0 else ""
    for backend in available:
        if any(f":{chain} " in saves[backend.name] for chain in HINT_CHAINS):
            return backend
    nft, legacy = _rule_count(saves["nft"]), _rule_count(saves["legacy"])
    if legacy > nft:
        return LEGACY
    if nft > legacy:
        return NFT
    version = run(["iptables", "-V"], capture_output=True, text=True).stdout
    return LEGACY if "legacy" in version else NFT


def failed_line(stderr: str) -> int | None:
    """The input line iptables-restore blamed, from its error output."""
    m = _LINE_RE.search(stderr)
    return int(m.group(1)) if m else None


class Executor:
    """Runs iptables-restore/-save of one backend (chosen once, at start-up)."""

    def __init__(self, backend: Backend, *, run: Runner = subprocess.run) -> None:
        self.backend = backend
        self._run = run

    def restore(self, text: str, *, counters: bool = False) -> None:
        """Apply `text` atomically with --noflush (tables not named in it are untouched)."""
        cmd = [self.backend.restore, "--noflush", "-w", str(WAIT_SECONDS)]
        if counters:
            cmd.append("--counters")
        r = self._run(cmd, input=text, capture_output=True, text=True)
        if r.returncode == 0:
            return
        stderr = r.stderr.strip()
        line = failed_line(stderr)
        lines = text.splitlines()
        offending = lines[line - 1] if line is not None and 0 < line <= len(lines) else None
        where = f" at line {line}: {offending}" if offending is not None else ""
        first = stderr.splitlines()[0] if stderr else f"exit status {r.returncode}"
        raise RestoreError(
            f"{self.backend.restore} failed{where} ({first})",
            line=line,
            text=offending,
            stderr=stderr,
        )

    def ensure(self, checks: Sequence[Sequence[str]]) -> int:
        """For each rule in `-C` form: insert it (`-I`) when the check says it is missing.
        Returns how many were inserted; raises IptablesError when an insert fails."""
        inserted = 0
        for check in checks:
            base = [self.backend.iptables, "-w", str(WAIT_SECONDS)]
            r = self._run([*base, *check], capture_output=True, text=True)
            if r.returncode == 0:
                continue
            if r.returncode != 1:  # 1: no such rule; else the check itself failed
                raise IptablesError(f"{' '.join(check)}: {r.stderr.strip()}")
            insert = ["-I" if arg == "-C" else arg for arg in check]
            r = self._run([*base, *insert], capture_output=True, text=True)
            if r.returncode != 0:
                raise IptablesError(f"{' '.join(insert)}: {r.stderr.strip()}")
            inserted += 1
        return inserted

    def save(self, tables: Sequence[str] = ("nat", "filter")) -> str:
        out = []
        for table in tables:
            r = self._run([self.backend.save, "-t", table], capture_output=True, text=True)
            if r.returncode == 0:
                out.append(r.stdout)
        return "".join(out)

    def chains(self, table: str) -> set[str]:
        """Names of the chains that exist now in `table`."""
        text = self.save((table,))
        return {ln[1:].split()[0] for ln in text.splitlines() if ln.startswith(":")}

    def inspect(self, table: str) -> Saved:
        """The chains and builtin-chain jumps in `table` now (one iptables-save); raises
        IptablesError when the save fails, since a missed jump would be added twice."""
        r = self._run([self.backend.save, "-t", table], capture_output=True, text=True)
        if r.returncode != 0:
            raise IptablesError(f"{self.backend.save} -t {table}: {r.stderr.strip()}")
        return parse_saved(r.stdout)


def committed_tables(text: str, failed_line: int | None) -> list[str]:
    """Tables of a restore input whose COMMIT comes before the line iptables-restore blamed
    (those it had already committed)."""
    if failed_line is None:
        return []
    out, table = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.strip() == "COMMIT" and number < failed_line:
            out.append(table)
    return out


def table_sections(text: str, tables: list[str]) -> str:
    """Only the `*table ... COMMIT` sections of `tables` from a restore input."""
    out: list[str] = []
    keep = False
    for line in text.splitlines():
        if line.startswith("*"):
            keep = line[1:].strip() in tables
        if keep:
            out.append(line)
    return "\n".join(out) + "\n" if out else ""
