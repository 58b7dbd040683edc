"""Daemons of a local cluster: start detached with a log and a pid file, wait until ready, stop.
Knows nothing of what a component is; the caller hands it a name, a command and a readiness check.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class ComponentFailed(RuntimeError):
    """A component exited or never became ready; the message names it and ends with its log tail."""


@dataclass(frozen=True)
class Daemon:
    """A long-running process owned by a cluster directory."""

    name: str
    run_dir: Path
    log_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid if the recorded process is still alive (and not a zombie)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def start(
    daemon: Daemon,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    netns: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> int:
    """Start `command` in its own session (it outlives the caller); idempotent when already running.

    With `netns`, the process runs in that named network namespace (nsenter, same mount namespace).
    `pass_fds` stay open in the process (a lock it holds for as long as it lives, say).
    """
    existing = daemon.pid()
    if existing is not None:
        log.info("%s already running (pid %d)", daemon.name, existing)
        return existing
    daemon.run_dir.mkdir(parents=True, exist_ok=True)
    daemon.log_dir.mkdir(parents=True, exist_ok=True)
    if netns is not None:
        command = ["nsenter", f"--net=/run/netns/{netns}", "--", *command]
    with open(daemon.log_file, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            pass_fds=pass_fds,
        )
    daemon.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_ready(
    daemon: Daemon, ready: Callable[[], bool], *, timeout: float, interval: float = 0.2
) -> float:
    """Poll `ready` until it answers True; returns seconds waited. Raises ComponentFailed."""
    t0 = time.monotonic()
    while True:
        if daemon.pid() is None:
            raise ComponentFailed(
                f"{daemon.name} exited during start-up; last lines of "
                f"{daemon.log_file}:\n{daemon.tail()}"
            )
        with contextlib.suppress(Exception):
            if ready():
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise ComponentFailed(
                f"{daemon.name} not ready after {timeout:.0f}s; last lines of "
                f"{daemon.log_file}:\n{daemon.tail()}"
            )
        time.sleep(interval)


def stop(daemon: Daemon, *, grace: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds; removes the pid file. True if it was running."""
    pid = daemon.pid()
    daemon.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    return terminate(pid, grace=grace)


def terminate(pid: int, *, grace: float = 10.0) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        _reap(pid)
        if not _alive(pid):
            break
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def processes() -> Iterator[tuple[int, int, list[str]]]:
    """(pid, ppid, argv) of every process on the machine."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        yield int(entry.name), ppid, [a.decode(errors="replace") for a in argv if a]


def kill_tree(root_pids: list[int]) -> int:
    """SIGKILL the given processes and all their descendants; returns how many were signalled."""
    table = list(processes())
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in table:
        children.setdefault(ppid, []).append(pid)
    todo, seen = list(root_pids), set[int]()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
    for pid in seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in seen:
        for _ in range(40):
            _reap(pid)
            if not _alive(pid):
                break
            time.sleep(0.05)
    return len(seen)


def kill_leftover_shims(containerd_socket: Path) -> int:
    """SIGKILL the runc shims (and their containers) that served the containerd at
    `containerd_socket` and outlived it; returns how many processes were signalled."""
    sock = str(containerd_socket)
    shims = [
        pid
        for pid, _, argv in processes()
        if argv and argv[0].endswith("containerd-shim-runc-v2") and sock in argv
    ]
    return kill_tree(shims) if shims else 0
