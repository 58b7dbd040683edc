"""mountinfo parsing, fsGroup modes and hostPath type checks.
On a temporary directory; nothing is mounted.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from kubelet.volumes.hostfs import (
    HostPathError,
    MountEntry,
    check_host_path,
    fs_group_mode,
    mounts_under,
    parse_mountinfo,
    tmpfs_options,
)

MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid - proc proc rw
90 22 0:50 / /var/lib/pyk/pods/u1/volumes/kubernetes.io~secret/s rw - tmpfs tmpfs rw,size=10k
91 22 0:51 / /var/lib/pyk/pods/u1/volumes/kubernetes.io~empty-dir/my\\040cache rw - tmpfs tmpfs rw
92 90 0:52 / /var/lib/pyk/pods/u1/volumes/kubernetes.io~secret/s/inner rw shared:5 - tmpfs x rw
93 22 0:53 / /var/lib/pyk/pods/u10/volumes/kubernetes.io~secret/s rw - tmpfs tmpfs rw
"""


def test_parse_mountinfo_unescapes_and_skips_optional_fields() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert entries[0] == MountEntry("/proc", "proc", "proc")
    assert entries[2].mount_point.endswith("/my cache")
    assert entries[3].fstype == "tmpfs" and entries[3].source == "x"


def test_mounts_under_is_deepest_first_and_exact_on_prefix() -> None:
    found = mounts_under(parse_mountinfo(MOUNTINFO), Path("/var/lib/pyk/pods/u1"))
    assert found[0].endswith("/s/inner")
    assert len(found) == 3
    assert not any("/u10/" in p for p in found)


def test_tmpfs_options() -> None:
    assert tmpfs_options(None) == "mode=0755"
    assert tmpfs_options(16 * 2**20, 0o777) == "mode=0777,size=16777216"


@pytest.mark.parametrize(
    ("mode", "is_dir", "ro", "want"),
    [
        (0o644, False, True, 0o644),
        (0o600, False, True, 0o640),
        (0o700, False, False, 0o770),
        (0o400, False, False, 0o660 | 0o400),
        (0o755, True, True, 0o755 | stat.S_ISGID),
        (0o700, True, False, 0o770 | stat.S_ISGID),
    ],
)
def test_fs_group_mode(mode: int, is_dir: bool, ro: bool, want: int) -> None:
    assert fs_group_mode(mode, is_dir=is_dir, read_only=ro) == want


def test_host_path_types(tmp_path: Path) -> None:
    d = tmp_path / "new" / "dir"
    check_host_path(str(d), "DirectoryOrCreate")
    assert d.is_dir()
    check_host_path(str(d), "Directory")
    f = tmp_path / "file"
    check_host_path(str(f), "FileOrCreate")
    assert f.is_file()
    check_host_path(str(f), "File")
    check_host_path(str(tmp_path / "whatever"), "")
    with pytest.raises(HostPathError, match=r"is not a directory \(type Directory\)"):
        check_host_path(str(f), "Directory")
    with pytest.raises(HostPathError, match=r"does not exist .*type File"):
        check_host_path(str(tmp_path / "missing"), "File")
    with pytest.raises(HostPathError, match="is not a socket file"):
        check_host_path(str(f), "Socket")
    with pytest.raises(HostPathError, match="is not a character device"):
        check_host_path(str(f), "CharDevice")
    check_host_path("/dev/null", "CharDevice")


def test_socket_type(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        check_host_path(str(path), "Socket")
