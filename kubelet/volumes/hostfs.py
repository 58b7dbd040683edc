"""Host file-system operations for volumes: tmpfs mounts, mountinfo, umount, fsGroup ownership,
hostPath type checks. Blocking (callers use a worker thread); decides nothing about pods.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")


class HostPathError(Exception):
    """A hostPath that does not match its declared type (the message names path and type)."""


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries of /proc/<pid>/mountinfo in order (mount point, fs type, source)."""
    out: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        fstype = fields[sep + 1] if len(fields) > sep + 1 else ""
        source = fields[sep + 2] if len(fields) > sep + 2 else ""
        out.append(MountEntry(_unescape(fields[4]), fstype, _unescape(source)))
    return out


def mounts_under(entries: Iterable[MountEntry], base: Path) -> list[str]:
    """Mount points at or below `base`, deepest first (the order to unmount them in)."""
    prefix = str(base).rstrip("/")
    found = {
        e.mount_point
        for e in entries
        if e.mount_point == prefix or e.mount_point.startswith(prefix + "/")
    }
    return sorted(found, key=lambda p: (-p.count("/"), p))


def current_mounts() -> list[MountEntry]:
    return parse_mountinfo(MOUNTINFO.read_text())


def is_mount_point(path: Path) -> bool:
    return str(path) in {e.mount_point for e in current_mounts()}


def tmpfs_options(size_bytes: int | None, mode: int = 0o755) -> str:
    opts = f"mode={mode:04o}"
    if size_bytes:
        opts += f",size={size_bytes}"
    return opts


def mount_tmpfs(path: Path, size_bytes: int | None, mode: int = 0o755) -> bool:
    """A tmpfs at `path` unless one is mounted there already; returns whether it mounted one."""
    path.mkdir(parents=True, exist_ok=True)
    if is_mount_point(path.resolve()):
        return False
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", tmpfs_options(size_bytes, mode), "tmpfs", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return True


def unmount(path: str) -> None:
    """umount, then a lazy umount if something still holds the mount."""
    done = subprocess.run(["umount", path], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", path], check=True, capture_output=True, text=True)


# ---- fsGroup ownership ---------------------------------------------------------------------
def fs_group_mode(mode: int, *, is_dir: bool, read_only: bool) -> int:
    """Mode bits after upstream's SetVolumeOwnership: group read (and write unless read-only),
    group exec where the owner may exec, setgid on directories."""
    mask = 0o440 if read_only else 0o660
    if is_dir:
        return mode | mask | 0o110 | stat.S_ISGID
    if mode & 0o100:
        mask |= 0o110
    return mode | mask


def apply_fs_group(root: Path, gid: int, *, read_only: bool) -> None:
    """chgrp everything below `root` to `gid` and widen modes as fs_group_mode says."""
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files, ""]:
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            if st.st_gid != gid:
                os.lchown(path, -1, gid)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            want = fs_group_mode(mode, is_dir=stat.S_ISDIR(st.st_mode), read_only=read_only)
            if want != mode:
                os.chmod(path, want)


# ---- hostPath types ------------------------------------------------------------------------
_TYPE_TESTS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "FileOrCreate": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def check_host_path(path: str, type_: str) -> None:
    """Create (the *OrCreate types) and check a hostPath; HostPathError says what is wrong."""
    if not type_:
        return
    if type_ not in _TYPE_TESTS:
        raise HostPathError(f'unsupported hostPath type "{type_}" for {path}')
    test, what = _TYPE_TESTS[type_]
    p = Path(path)
    if type_ == "DirectoryOrCreate" and not p.exists():
        p.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif type_ == "FileOrCreate" and not p.exists():
        try:
            fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise HostPathError(f"{path} could not be created as a file: {e.strerror}") from e
        os.close(fd)
    try:
        st = p.stat()
    except OSError as e:
        raise HostPathError(f"{path} does not exist (expected {what}, type {type_})") from e
    if not test(st.st_mode):
        raise HostPathError(f"{path} is not {what} (type {type_})")
