"""Fixtures for cgroup writer tests: plain directory trees shaped like cgroupfs, where rmdir
behaves as on cgroupfs (a cgroup goes with its control files unless it has child cgroups)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kubelet.cgroups import writer


def _cgroupfs_rmdir(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    if any(p.is_dir() for p in path.iterdir()):
        raise OSError(errno.EBUSY, "Device or resource busy", str(path))
    if (path / "cgroup.procs").exists() and (path / "cgroup.procs").read_text().strip():
        raise OSError(errno.EBUSY, "Device or resource busy", str(path))
    for f in path.iterdir():
        f.unlink()
    os.rmdir(path)


@pytest.fixture
def cgroupfs_rmdir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "rmdir", _cgroupfs_rmdir)
