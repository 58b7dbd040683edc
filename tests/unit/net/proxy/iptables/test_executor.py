"""The iptables executor with a fake runner: backend detection, the restore command line, and
errors that name the offending input line."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import Any

import pytest

from net.proxy.iptables import executor as iptables_exec
from net.proxy.iptables.executor import LEGACY, NFT, Executor, IptablesError, RestoreError


class FakeRun:
    def __init__(self, outputs: Mapping[str, tuple[int, str, str]]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[list[str], Any]] = []

    def __call__(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((cmd, kw.get("input")))
        rc, out, err = self.outputs.get(cmd[0], (0, "", ""))
        return subprocess.CompletedProcess(cmd, rc, out, err)


def _which(name: str) -> str:
    return "/usr/sbin/" + name


HINT = "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"
RULES = "*nat\n-A POSTROUTING -j MASQUERADE\n-A PREROUTING -j X\nCOMMIT\n"


@pytest.mark.parametrize(
    ("nft", "legacy", "version", "expected"),
    [
        (HINT, RULES, "iptables v1.8.9 (legacy)", NFT),  # hint chain wins over rule counts
        (RULES, HINT, "iptables v1.8.9 (nf_tables)", LEGACY),
        ("", RULES, "iptables v1.8.9 (nf_tables)", LEGACY),  # more rules wins
        (RULES, "", "iptables v1.8.9 (legacy)", NFT),
        ("", "", "iptables v1.8.9 (legacy)", LEGACY),  # nothing anywhere: the default
        ("", "", "iptables v1.8.9 (nf_tables)", NFT),
    ],
)
def test_detect_backend_like_the_iptables_wrapper(
    nft: str, legacy: str, version: str, expected: iptables_exec.Backend
) -> None:
    run = FakeRun(
        {
            "iptables-nft-save": (0, nft, ""),
            "iptables-legacy-save": (0, legacy, ""),
            "iptables": (0, version, ""),
        }
    )
    assert iptables_exec.detect(run, _which) is expected


def test_detect_with_one_backend_installed_uses_it() -> None:
    run = FakeRun({})
    which = lambda name: None if "legacy" in name else "/x"  # noqa: E731
    assert iptables_exec.detect(run, which) is NFT
    assert run.calls == []


def test_restore_feeds_stdin_once_with_noflush() -> None:
    run = FakeRun({})
    Executor(NFT, run=run).restore("*nat\nCOMMIT\n")
    assert run.calls == [(["iptables-nft-restore", "--noflush", "-w", "5"], "*nat\nCOMMIT\n")]


@pytest.mark.parametrize(
    "stderr",
    [
        "iptables-nft-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\n"
        "Error occurred at line: 3\nTry `iptables-nft-restore -h' for more information.",
        "iptables-restore: line 3 failed",
    ],
)
def test_restore_failure_names_the_line(stderr: str) -> None:
    text = "*nat\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -j NOPE\nCOMMIT\n"
    run = FakeRun({"iptables-nft-restore": (2, "", stderr)})
    with pytest.raises(RestoreError) as info:
        Executor(NFT, run=run).restore(text)
    assert info.value.line == 3
    assert info.value.text == "-A KUBE-SVC-X -j NOPE"
    assert "line 3: -A KUBE-SVC-X -j NOPE" in str(info.value)


def test_restore_failure_without_a_line_still_says_why() -> None:
    run = FakeRun({"iptables-nft-restore": (1, "", "iptables-nft-restore: out of memory")})
    with pytest.raises(RestoreError) as info:
        Executor(NFT, run=run).restore("*nat\nCOMMIT\n")
    assert info.value.line is None
    assert "out of memory" in str(info.value)


def test_chains_lists_what_save_shows() -> None:
    save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A X\nCOMMIT\n"
    run = FakeRun({"iptables-legacy-save": (0, save, "")})
    assert Executor(LEGACY, run=run).chains("nat") == {"PREROUTING", "KUBE-SERVICES"}


def test_ensure_inserts_only_missing_jumps() -> None:
    calls: list[list[str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        missing = "-C" in cmd and "KUBE-SERVICES" in cmd and "OUTPUT" in cmd
        return subprocess.CompletedProcess(cmd, 1 if missing else 0, "", "")

    checks = [
        ["-t", "nat", "-C", "PREROUTING", "-j", "KUBE-SERVICES"],
        ["-t", "nat", "-C", "OUTPUT", "-j", "KUBE-SERVICES"],
    ]
    assert Executor(NFT, run=run).ensure(checks) == 1
    assert calls[-1] == [
        "iptables-nft",
        "-w",
        "5",
        "-t",
        "nat",
        "-I",
        "OUTPUT",
        "-j",
        "KUBE-SERVICES",
    ]


def test_ensure_does_not_insert_when_the_check_itself_failed() -> None:
    """iptables -C exits 1 for "no such rule"; anything else (the xtables lock, a missing
    chain or module) is an error, where inserting could duplicate the jump."""
    calls: list[list[str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 4, "", "Another app is currently holding the lock")

    with pytest.raises(IptablesError, match="holding the lock"):
        Executor(NFT, run=run).ensure([["-t", "nat", "-C", "OUTPUT", "-j", "KUBE-SERVICES"]])
    assert not any("-I" in c for c in calls)
