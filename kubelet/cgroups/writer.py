"""The small interface both cgroup writers (v1.py, v2.py) implement, and the file helpers they
share. A cgroup is named by its path components below the hierarchy's root.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from kubelet.cgroups.planner import Resources

log = logging.getLogger(__name__)
Parts = Sequence[str]


class CgroupError(OSError):
    """A cgroup file could not be written or a directory made; names the path and the cause."""


class CgroupWriter(Protocol):
    version: int

    def ensure(self, parts: Parts, res: Resources) -> None:
        """Create the cgroup (and its parents) if needed and apply `res` to it."""

    def exists(self, parts: Parts) -> bool: ...

    def absent(self, parts: Parts) -> list[str]:
        """Where the cgroup is not (v1: the controllers lacking it; v2: the unified mount)."""

    def children(self, parts: Parts) -> list[str]:
        """Names of the child cgroups (directories) of `parts`."""

    def procs(self, parts: Parts) -> list[int]:
        """Every process in the cgroup or any cgroup below it."""

    def remove(self, parts: Parts) -> bool:
        """Remove the cgroup and those below it; False (nothing forced) while any is busy."""

    def memory_working_set(self, parts: Parts) -> int | None:
        """Usage minus inactive file pages, as upstream's working set; None when unreadable."""


def write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise CgroupError(e.errno, f"writing {value!r} to {path}: {e.strerror}") from e


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def stat_value(text: str | None, key: str) -> int | None:
    """One field of a memory.stat style file ("key value" lines)."""
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def mkdir(path: Path) -> bool:
    """Make one cgroup directory; True when it is new."""
    try:
        path.mkdir()
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise CgroupError(e.errno, f"creating cgroup {path}: {e.strerror}") from e


def walk_dirs(top: Path) -> Iterator[Path]:
    """The cgroup and every cgroup below it, deepest first (the order rmdir needs)."""
    if not top.is_dir():
        return
    for dirpath, _, _ in os.walk(top, topdown=False):
        yield Path(dirpath)


def procs_under(top: Path) -> list[int]:
    pids: list[int] = []
    for d in walk_dirs(top):
        for line in (read(d / "cgroup.procs") or "").split():
            if line.isdigit():
                pids.append(int(line))
    return pids


def rmdir(path: Path) -> None:
    """Remove one cgroup (its control files go with it on cgroupfs)."""
    os.rmdir(path)


def rmdir_tree(top: Path) -> bool:
    """rmdir the tree bottom-up; stops at the first busy cgroup (its processes are not gone)."""
    for d in walk_dirs(top):
        try:
            rmdir(d)
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                log.debug("cgroup %s still busy: %s", d, e.strerror)
                return False
            raise CgroupError(e.errno, f"removing cgroup {d}: {e.strerror}") from e
    return True
