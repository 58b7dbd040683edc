"""AtomicWriter on a temporary directory: layout, updates, stale keys and bad paths.
No mounts; the clock is injected.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubelet.volumes.atomic import (
    DATA,
    PayloadError,
    check_payload_path,
    timestamp_name,
    write_atomically,
)
from kubelet.volumes.content import FileProjection


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


def _hidden(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if p.name.startswith("..") and p.name != DATA)


def test_first_write_layout(tmp_path: Path) -> None:
    clock = Clock()
    payload = {"a": FileProjection(b"1", 0o600), "d/b": FileProjection(b"2", 0o644)}
    assert write_atomically(tmp_path, payload, clock=clock)
    data = os.readlink(tmp_path / DATA)
    assert data.startswith("..20") and _hidden(tmp_path) == [data]
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "d") == "..data/d"
    assert (tmp_path / "d" / "b").read_bytes() == b"2"
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600


def test_same_payload_changes_nothing(tmp_path: Path) -> None:
    payload = {"a": FileProjection(b"1", 0o644)}
    write_atomically(tmp_path, payload, clock=Clock())
    before = os.readlink(tmp_path / DATA)
    assert not write_atomically(tmp_path, payload, clock=Clock())
    assert os.readlink(tmp_path / DATA) == before


def test_update_swaps_and_cleans_up(tmp_path: Path) -> None:
    clock = Clock()
    write_atomically(
        tmp_path, {"a": FileProjection(b"1", 0o644), "b": FileProjection(b"x", 0o644)}, clock=clock
    )
    old = os.readlink(tmp_path / DATA)
    assert write_atomically(tmp_path, {"a": FileProjection(b"2", 0o644)}, clock=clock)
    new = os.readlink(tmp_path / DATA)
    assert new != old
    assert _hidden(tmp_path) == [new], "the old timestamped dir is removed"
    assert (tmp_path / "a").read_bytes() == b"2"
    assert not (tmp_path / "b").is_symlink(), "a key gone from the payload is removed"
    assert not (tmp_path / "..data_tmp").exists()


def test_mode_change_alone_rewrites(tmp_path: Path) -> None:
    write_atomically(tmp_path, {"a": FileProjection(b"1", 0o644)})
    assert write_atomically(tmp_path, {"a": FileProjection(b"1", 0o400)})
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o400


def test_prepare_sees_the_new_dir_before_the_swap(tmp_path: Path) -> None:
    seen: list[tuple[str, bool]] = []

    def prepare(d: Path) -> None:
        visible = (tmp_path / DATA).is_symlink() and os.readlink(tmp_path / DATA) == d.name
        seen.append((d.name, visible))

    write_atomically(tmp_path, {"a": FileProjection(b"1", 0o644)}, prepare=prepare)
    assert seen and seen[0][1] is False


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "..data", "..x/y"])
def test_bad_paths(bad: str) -> None:
    with pytest.raises(PayloadError):
        check_payload_path(bad)


def test_timestamp_name() -> None:
    assert timestamp_name(0.5) == "..1970_01_01_00_00_00.500000000"
