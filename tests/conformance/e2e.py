"""The e2e.test passes of a conformance run: their command lines (pure) and running one with a
wall-clock watchdog that kills the whole process group when ginkgo's own timeout did not stop it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FOCUS = r"\[NodeConformance\]"
SKIP = r"\[Serial\]|\[Slow\]|\[Flaky\]"
SERIAL_SKIP = r"\[Slow\]|\[Flaky\]"
WATCHDOG_GRACE = 300.0
"""Seconds past ginkgo's --timeout before the watchdog kills a pass (ginkgo reports first)."""


@dataclass(frozen=True)
class Pass:
    """One e2e.test invocation and where its JUnit goes."""

    name: str
    argv: tuple[str, ...]
    junit: Path
    timeout_s: float
    log: Path


def e2e_flags(*, kubeconfig: Path, kubectl: Path, report_dir: Path) -> list[str]:
    """Flags of e2e.test itself (not ginkgo's) for the local provider."""
    return [
        "--provider=local",
        f"--kubeconfig={kubeconfig}",
        f"--kubectl-path={kubectl}",
        f"--report-dir={report_dir}",
        f"--e2e-output-dir={report_dir}",
        "--disable-log-dump=true",
        "--allowed-not-ready-nodes=0",
    ]


def parallel_pass(
    *,
    ginkgo: Path,
    e2e_test: Path,
    procs: int,
    timeout_s: float,
    flags: Sequence[str],
    out_dir: Path,
    focus: str = FOCUS,
    skip: str = SKIP,
) -> Pass:
    """The non-serial specs through the ginkgo CLI with `procs` workers; with procs <= 1 it runs
    e2e.test directly (ginkgo's own in-process runner)."""
    junit = out_dir / "junit_parallel.xml"
    if procs <= 1:
        argv = [
            str(e2e_test),
            f"--ginkgo.focus={focus}",
            f"--ginkgo.skip={skip}",
            f"--ginkgo.timeout={int(timeout_s)}s",
            f"--ginkgo.junit-report={junit}",
            "--ginkgo.no-color",
            "--ginkgo.poll-progress-after=120s",
            *flags,
        ]
    else:
        argv = [
            str(ginkgo),
            f"--procs={procs}",
            f"--focus={focus}",
            f"--skip={skip}",
            f"--timeout={int(timeout_s)}s",
            f"--output-dir={out_dir}",
            f"--junit-report={junit.name}",
            "--no-color",
            "--poll-progress-after=120s",
            str(e2e_test),
            "--",
            *flags,
        ]
    return Pass("parallel", tuple(argv), junit, timeout_s, out_dir / "parallel.log")


def serial_pass(*, e2e_test: Path, timeout_s: float, flags: Sequence[str], out_dir: Path) -> Pass:
    """The [Serial] specs among the focused ones, one at a time (focus and label filter AND)."""
    junit = out_dir / "junit_serial.xml"
    argv = [
        str(e2e_test),
        f"--ginkgo.focus={FOCUS}",
        "--ginkgo.label-filter=Serial",
        f"--ginkgo.skip={SERIAL_SKIP}",
        f"--ginkgo.timeout={int(timeout_s)}s",
        f"--ginkgo.junit-report={junit}",
        "--ginkgo.no-color",
        "--ginkgo.poll-progress-after=120s",
        *flags,
    ]
    return Pass("serial", tuple(argv), junit, timeout_s, out_dir / "serial.log")


def dry_run_argv(e2e_test: Path, *, focus: str = FOCUS, skip: str = SKIP) -> list[str]:
    return [
        str(e2e_test),
        f"--ginkgo.focus={focus}",
        f"--ginkgo.skip={skip}",
        "--ginkgo.dry-run",
        "--ginkgo.no-color",
        "--ginkgo.v",
    ]


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    seconds: float
    killed_by_watchdog: bool


def run_pass(
    p: Pass,
    *,
    env: dict[str, str] | None = None,
    grace: float = WATCHDOG_GRACE,
    interrupt_wait: float = 30.0,
) -> Outcome:
    """Run a pass in its own process group, output to its log; on watchdog expiry (`grace`
    seconds past the pass's timeout) or Ctrl-C the whole group is killed (ginkgo workers
    included) before returning or re-raising."""
    p.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    deadline = t0 + p.timeout_s + grace
    with p.log.open("ab") as out:
        proc = subprocess.Popen(
            list(p.argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        killed = False
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    killed = True
                    _kill_group(proc, interrupt_wait)
                    break
                time.sleep(min(2.0, max(0.1, grace / 4)))
        except BaseException:
            _kill_group(proc, interrupt_wait)
            raise
    return Outcome(proc.wait(), time.monotonic() - t0, killed)


def _kill_group(proc: subprocess.Popen[bytes], interrupt_wait: float) -> None:
    """SIGINT first (ginkgo writes its reports on interrupt), SIGKILL if still there."""
    for sig, wait in ((signal.SIGINT, interrupt_wait), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
