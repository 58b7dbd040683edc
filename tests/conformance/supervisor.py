"""Keeps the node agent running during a conformance run: a thread that notices the agent died,
records the crash (exit status and log tail) and starts it again.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
from collections.abc import Callable

from tests.conformance.report import AgentCrash

LOG_TAIL_LINES = 30


def exit_info(pid: int | None) -> str:
    """How a child process ended, when it is ours to reap; else what is known."""
    if pid is None:
        return "exited (pid unknown)"
    with contextlib.suppress(ChildProcessError, OSError):
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            if os.WIFSIGNALED(status):
                return f"pid {pid} killed by signal {os.WTERMSIG(status)}"
            return f"pid {pid} exited with status {os.WEXITSTATUS(status)}"
    return f"pid {pid} exited"


class Supervisor:
    """Polls `alive()`; on death records an AgentCrash and calls `restart()`."""

    def __init__(
        self,
        *,
        alive: Callable[[], int | None],
        restart: Callable[[], None],
        log_tail: Callable[[int], str],
        interval: float = 5.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self._alive = alive
        self._restart = restart
        self._tail = log_tail
        self._interval = interval
        self._say = say
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agent-supervisor", daemon=True)
        self.crashes: list[AgentCrash] = []
        self._last_pid: int | None = None

    def start(self) -> None:
        self._last_pid = self._alive()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def check(self) -> None:
        """One poll (the thread's loop body; tests call it directly)."""
        pid = self._alive()
        if pid is not None:
            self._last_pid = pid
            return
        if self._last_pid is None and self.crashes:  # still down after a failed restart
            self._try_restart()
            return
        at = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%SZ")
        crash = AgentCrash(
            at=at, exit_info=exit_info(self._last_pid), log_tail=self._tail(LOG_TAIL_LINES)
        )
        self.crashes.append(crash)
        self._say(f"node agent died ({crash.exit_info}); restarting it")
        self._try_restart()

    def _try_restart(self) -> None:
        try:
            self._restart()
        except Exception as e:  # keep supervising: the next poll tries again
            self._say(f"restarting the node agent failed: {e}")
        self._last_pid = self._alive()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()
