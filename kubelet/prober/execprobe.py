"""The exec probe: the command through CRI ExecSync with the probe's timeout enforced.
Owns only the mapping from ExecSync answers to outcomes; it must not open gRPC channels itself.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from typing import Protocol

import grpc

from cri import api
from cri.errors import CRIError
from kubelet.prober.results import Outcome, Result

MAX_OUTPUT = 10 * 1024
DEADLINE_MARGIN = 2.0
"""Seconds the CRI call may take beyond the command's timeout before the agent gives up."""


class ExecRuntime(Protocol):
    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout_seconds: int = 0,
        deadline: float | None = None,
    ) -> api.ExecSyncResponse: ...


def _timed_out(cmd: Sequence[str], timeout: int) -> Outcome:
    return Outcome(Result.FAILURE, f"command {shlex.join(cmd)!r} timed out after {timeout}s")


async def probe_exec(
    runtime: ExecRuntime, container_id: str, cmd: Sequence[str], seconds: int
) -> Outcome:
    """Exit 0: success; another exit code: failure with the output; a timeout: failure."""
    limit = seconds + DEADLINE_MARGIN
    try:
        resp = await asyncio.wait_for(
            runtime.exec_sync(container_id, cmd, timeout_seconds=seconds, deadline=limit),
            timeout=limit + 0.5,
        )
    except TimeoutError:
        return _timed_out(cmd, seconds)
    except CRIError as e:
        if e.code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return _timed_out(cmd, seconds)
        return Outcome(Result.UNKNOWN, str(e))
    output = (bytes(resp.stdout) + bytes(resp.stderr))[:MAX_OUTPUT].decode(errors="replace")
    if resp.exit_code == 0:
        return Outcome(Result.SUCCESS, output)
    detail = output.strip() or f"command {shlex.join(cmd)!r} exited with {resp.exit_code}"
    return Outcome(Result.FAILURE, detail)
