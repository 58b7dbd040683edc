"""Probes this machine for limits that fail conformance tests whatever the node agent does, and
returns the evidence (keys match tests.conformance.areas.MACHINE_LIMITS). Touches only a
throwaway network namespace that vanishes with its process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

ENVIRONMENT_DOC = "/work/shared/ENVIRONMENT.md"


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return r.returncode, (r.stderr or r.stdout).strip()


def dummy_link(run: Callable[[list[str]], tuple[int, str]] = _run) -> str | None:
    """Evidence that the kernel has no dummy link type, or None when it has one. The link is
    made in a private network namespace (`unshare -n`), so nothing is left behind."""
    argv = ["unshare", "--net", "ip", "link", "add", "probe0", "type", "dummy"]
    code, out = run(argv)
    if code == 0:
        return None
    return f"`{' '.join(argv)}` on this host: exit {code}, {out or 'no output'}"


def registry(run: Callable[[list[str]], tuple[int, str]] = _run) -> str:
    """This machine reaches no container registry (a documented fact of these machines; the
    runner does not send traffic outside the host to prove it). The failing tests' own pull
    errors are quoted next to it in the report."""
    return f"no container registry is reachable from this machine ({ENVIRONMENT_DOC})"


def probe() -> dict[str, str]:
    facts = {"no_registry": registry()}
    dummy = dummy_link()
    if dummy is not None:
        facts["no_dummy_link"] = dummy
    return facts
