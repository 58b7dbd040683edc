"""Atomic volume content updates as upstream's AtomicWriter: a timestamped dir, `..data` swapped in
one rename, `key -> ..data/key` links. Blocking; knows nothing about Kubernetes objects.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from kubelet.volumes.content import FileProjection

DATA = "..data"
DATA_TMP = "..data_tmp"
Clock = Callable[[], float]


class PayloadError(ValueError):
    """A payload path that would escape the volume or clash with the writer's own names."""


def check_payload_path(path: str) -> PurePosixPath:
    p = PurePosixPath(path)
    if not path or p.is_absolute():
        raise PayloadError(f'invalid path "{path}": must be a non-empty relative path')
    if ".." in p.parts:
        raise PayloadError(f'invalid path "{path}": must not contain ".."')
    if p.parts[0].startswith(".."):
        raise PayloadError(f'invalid path "{path}": must not start with ".."')
    return p


def timestamp_name(now: float) -> str:
    """`..2026_11_23_12_35_38.123456789`: sortable, unique to the nanosecond, hidden."""
    seconds = int(now)
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(seconds))
    return f"..{stamp}.{int((now - seconds) * 1e9):09d}"


def read_payload(target: Path) -> dict[str, FileProjection] | None:
    """What the volume currently shows through `..data`, or None when it has never been written."""
    data = target / DATA
    if not data.is_symlink():
        return None
    out: dict[str, FileProjection] = {}
    root = target / os.readlink(data)
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            full = Path(dirpath) / f
            st = full.lstat()
            out[str(full.relative_to(root))] = FileProjection(
                full.read_bytes(), st.st_mode & 0o7777
            )
    return out


def _write_dir(directory: Path, payload: Mapping[str, FileProjection]) -> None:
    for rel, proj in payload.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, proj.data)
            os.fchmod(fd, proj.mode)
        finally:
            os.close(fd)


def _top_names(payload: Mapping[str, FileProjection]) -> set[str]:
    return {PurePosixPath(p).parts[0] for p in payload}


def write_atomically(
    target: Path,
    payload: Mapping[str, FileProjection],
    *,
    clock: Clock = time.time,
    prepare: Callable[[Path], None] | None = None,
) -> bool:
    """Make `target` show exactly `payload`; returns whether anything changed.
    `prepare` runs on the new timestamped directory before it becomes visible (ownership)."""
    for p in payload:
        check_payload_path(p)
    target.mkdir(parents=True, exist_ok=True)
    current = read_payload(target)
    if current is not None and current == dict(payload):
        _link_user_visible(target, _top_names(payload))
        return False
    old_dir = os.readlink(target / DATA) if current is not None else None
    old_names = _top_names(current or {})
    new_dir = target / timestamp_name(clock())
    new_dir.mkdir(mode=0o755)
    _write_dir(new_dir, payload)
    if prepare is not None:
        prepare(new_dir)
    tmp = target / DATA_TMP
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(new_dir.name)
    os.rename(tmp, target / DATA)
    new_names = _top_names(payload)
    _link_user_visible(target, new_names)
    for gone in old_names - new_names:
        with contextlib.suppress(FileNotFoundError):
            (target / gone).unlink()
    if old_dir is not None and old_dir != new_dir.name:
        shutil.rmtree(target / old_dir, ignore_errors=True)
    return True


def _link_user_visible(target: Path, names: set[str]) -> None:
    for name in names:
        link = target / name
        want = f"{DATA}/{name}"
        if link.is_symlink() and os.readlink(link) == want:
            continue
        if link.is_symlink() or link.is_file():
            link.unlink()
        link.symlink_to(want)
