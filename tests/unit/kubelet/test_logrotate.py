"""Unit tests of container log rotation: the planner over listings, file compression, and the
executor against the fake CRI runtime with logs in a temporary directory.
"""

from __future__ import annotations

import datetime
import gzip
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError
from cri.fake import FakeRuntime, FakeRuntimeServer
from kubelet.logrotate import (
    LogRotator,
    Plan,
    Policy,
    clean,
    compress_file,
    plan_rotation,
    rotated_name,
)

NOW = datetime.datetime(2026, 11, 23, 13, 14, 15)
STAMP = "20261123-131415"
POLICY = Policy(max_bytes=100, max_files=5)


def stamp(minute: int) -> str:
    return f"0.log.20261123-13{minute:02d}00"


# ---- planner ---------------------------------------------------------------------------------


def test_small_log_is_left_alone() -> None:
    assert plan_rotation("0.log", ["0.log"], 99, POLICY, NOW) is None


def test_disabled_policy_never_rotates() -> None:
    assert plan_rotation("0.log", ["0.log"], 10**9, Policy(0, 5), NOW) is None


def test_first_rotation_only_renames() -> None:
    plan = plan_rotation("0.log", ["0.log", "1.log"], 100, POLICY, NOW)
    assert plan == Plan(rotate_to=f"0.log.{STAMP}")


def test_timestamp_uses_upstream_layout() -> None:
    assert rotated_name("3.log", NOW) == "3.log.20261123-131415"


def test_older_rotated_files_are_compressed_newest_stays_plain() -> None:
    listing = ["0.log", f"{stamp(1)}.gz", stamp(2)]
    plan = plan_rotation("0.log", listing, 500, POLICY, NOW)
    assert plan == Plan(compress=(stamp(2),), rotate_to=f"0.log.{STAMP}")


def test_excess_files_removed_oldest_first() -> None:
    # max 5 files: live + new rotated + 3 kept; five rotated exist, so the two oldest go.
    listing = ["0.log", *(f"{stamp(m)}.gz" for m in range(1, 5)), stamp(5)]
    plan = plan_rotation("0.log", listing, 500, POLICY, NOW)
    assert plan is not None
    assert plan.remove == (f"{stamp(1)}.gz", f"{stamp(2)}.gz")
    assert plan.compress == (stamp(5),)
    kept = set(listing) - set(plan.remove)
    assert len(kept) + 1 == POLICY.max_files  # + the newly created live file


def test_max_files_two_keeps_only_the_last_rotation() -> None:
    listing = ["0.log", f"{stamp(1)}.gz", stamp(2)]
    plan = plan_rotation("0.log", listing, 500, Policy(100, 2), NOW)
    assert plan == Plan(remove=(f"{stamp(1)}.gz", stamp(2)), rotate_to=f"0.log.{STAMP}")


def test_leftovers_of_a_crashed_compression_are_removed() -> None:
    listing = ["0.log", stamp(1), f"{stamp(1)}.gz", f"{stamp(2)}.tmp", stamp(2)]
    plan = plan_rotation("0.log", listing, 500, POLICY, NOW)
    assert plan is not None
    assert set(plan.remove) == {stamp(1), f"{stamp(2)}.tmp"}
    assert plan.compress == (stamp(2),)


def test_other_containers_files_are_not_touched() -> None:
    listing = ["0.log", "1.log", "1.log.20261123-130000", "10.log.20261123-130000"]
    plan = plan_rotation("0.log", listing, 500, Policy(100, 2), NOW)
    assert plan == Plan(rotate_to=f"0.log.{STAMP}")


def test_rotation_twice_in_one_second_waits() -> None:
    listing = ["0.log", f"0.log.{STAMP}"]
    assert plan_rotation("0.log", listing, 500, POLICY, NOW) is None


# ---- files -----------------------------------------------------------------------------------


def test_compress_file_replaces_original_with_gzip(tmp_path: Path) -> None:
    path = tmp_path / stamp(1)
    data = b"2026-11-23T13:01:00Z stdout F hello\n" * 1000
    path.write_bytes(data)
    compress_file(str(path))
    assert sorted(os.listdir(tmp_path)) == [f"{stamp(1)}.gz"]
    assert gzip.decompress((tmp_path / f"{stamp(1)}.gz").read_bytes()) == data


def test_compress_failure_leaves_no_temporary(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        compress_file(str(tmp_path / "missing"))
    assert os.listdir(tmp_path) == []


def test_clean_removes_live_and_rotated_only(tmp_path: Path) -> None:
    for name in ("0.log", stamp(1), f"{stamp(2)}.gz", "1.log", "10.log"):
        (tmp_path / name).write_text("x")
    clean(str(tmp_path / "0.log"))
    assert sorted(os.listdir(tmp_path)) == ["1.log", "10.log"]


# ---- executor against the fake runtime --------------------------------------------------------


@pytest.fixture
async def runtime() -> AsyncIterator[tuple[FakeRuntime, RuntimeClient]]:
    async with FakeRuntimeServer() as srv, RuntimeClient(srv.endpoint) as cli:
        yield srv.runtime, cli


async def _running_container(rt: RuntimeClient, fake: FakeRuntime, log_dir: Path) -> str:
    fake.add_image("busybox:1.35")
    sandbox_config = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name="p", namespace="ns", uid="u1"),
        log_directory=str(log_dir),
    )
    sid = await rt.run_pod_sandbox(sandbox_config)
    config = api.ContainerConfig(
        metadata=api.ContainerMetadata(name="c"),
        image=api.ImageSpec(image="busybox:1.35"),
        log_path="c/0.log",
    )
    cid = await rt.create_container(sid, config, sandbox_config)
    await rt.start_container(cid)
    (log_dir / "c").mkdir(parents=True)
    return cid


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        self.now += datetime.timedelta(seconds=61)
        return self.now


async def test_rotator_rotates_compresses_and_bounds_files(
    runtime: tuple[FakeRuntime, RuntimeClient], tmp_path: Path
) -> None:
    fake, rt = runtime
    cid = await _running_container(rt, fake, tmp_path)
    live = tmp_path / "c" / "0.log"
    rotator = LogRotator(rt, Policy(max_bytes=64, max_files=3), clock=Clock())
    for round_ in range(5):
        live.write_bytes(f"round {round_}\n".encode() * 10)
        assert await rotator.rotate_all() == 1
        live.write_bytes(b"")  # the runtime's reopen creates a fresh file
    names = sorted(os.listdir(tmp_path / "c"))
    assert len(names) == 3
    assert names[0] == "0.log"
    assert names[1].endswith(".gz")
    assert not names[2].endswith(".gz")
    assert gzip.decompress((tmp_path / "c" / names[1]).read_bytes()).startswith(b"round 3\n")
    assert (tmp_path / "c" / names[2]).read_bytes().startswith(b"round 4\n")
    reopened = fake.requests("ReopenContainerLog")
    assert len(reopened) == 5
    assert all(isinstance(r, api.ReopenContainerLogRequest) for r in reopened)
    assert {r.container_id for r in reopened if isinstance(r, api.ReopenContainerLogRequest)} == {
        cid
    }


async def test_rotator_skips_small_logs(
    runtime: tuple[FakeRuntime, RuntimeClient], tmp_path: Path
) -> None:
    fake, rt = runtime
    await _running_container(rt, fake, tmp_path)
    (tmp_path / "c" / "0.log").write_bytes(b"short\n")
    rotator = LogRotator(rt, Policy(max_bytes=64, max_files=3))
    assert await rotator.rotate_all() == 0
    assert os.listdir(tmp_path / "c") == ["0.log"]
    assert "ReopenContainerLog" not in fake.methods()


async def test_failed_reopen_renames_the_log_back(
    runtime: tuple[FakeRuntime, RuntimeClient], tmp_path: Path
) -> None:
    fake, rt = runtime
    cid = await _running_container(rt, fake, tmp_path)
    live = tmp_path / "c" / "0.log"
    live.write_bytes(b"x" * 100)
    fake.fail("ReopenContainerLog", grpc.StatusCode.UNAVAILABLE)
    rotator = LogRotator(rt, Policy(max_bytes=64, max_files=3))
    with pytest.raises(CRIError):
        await rotator.rotate(cid, str(live))
    assert os.listdir(tmp_path / "c") == ["0.log"]
    assert live.read_bytes() == b"x" * 100
