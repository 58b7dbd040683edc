"""Container log rotation (containerLogMaxSize / containerLogMaxFiles) as upstream's log manager
does it: a pure planner over a directory listing, and an executor that renames, gzips and reopens.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError

log = logging.getLogger(__name__)

MONITOR_SECONDS = 10.0
"""How often every running container's log size is checked (upstream's logMonitorPeriod)."""
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
"""Upstream's rotated-file suffix, Go layout 20060102-150405."""
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class Policy:
    max_bytes: int
    """A live log at least this large is rotated; 0 or less disables rotation."""
    max_files: int
    """Most files kept per container, the live one included (at least 2)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one container's log files, in order: remove, compress, rotate the live one.
    All names are file names in the live log's directory."""

    remove: tuple[str, ...] = ()
    compress: tuple[str, ...] = ()
    rotate_to: str | None = None


def rotated_name(live: str, now: datetime.datetime) -> str:
    return f"{live}.{now.strftime(TIMESTAMP_FORMAT)}"


def _in_use(name: str, names: set[str]) -> bool:
    """Upstream's isInUse: temporaries are leftovers; a plain file whose .gz exists was already
    compressed (the run that compressed it stopped before removing it)."""
    if name.endswith(TMP_SUFFIX):
        return False
    if name.endswith(COMPRESS_SUFFIX):
        return True
    return name + COMPRESS_SUFFIX not in names


def plan_rotation(
    live: str, listing: Iterable[str], size: int, policy: Policy, now: datetime.datetime
) -> Plan | None:
    """The plan for the live log `live` (a file name) of `size` bytes, given the names in its
    directory; None when nothing is due. After the plan runs at most policy.max_files files
    remain: the rotated ones kept, the newly rotated one (left uncompressed, as a reader may
    still follow it) and the live file the runtime reopens."""
    if policy.max_bytes <= 0 or size < policy.max_bytes:
        return None
    target = rotated_name(live, now)
    prefix = live + "."
    ours = {n for n in listing if n.startswith(prefix)}
    if target in ours or target + COMPRESS_SUFFIX in ours:
        return None  # rotated within this second already: next round
    unused = sorted(n for n in ours if not _in_use(n, ours))
    kept = sorted(n for n in ours if _in_use(n, ours))  # oldest first: fixed-width timestamps
    excess = max(0, len(kept) - max(0, policy.max_files - 2))
    remove = (*unused, *kept[:excess])
    compress = tuple(n for n in kept[excess:] if not n.endswith(COMPRESS_SUFFIX))
    return Plan(remove=remove, compress=compress, rotate_to=target)


def compress_file(path: str) -> None:
    """path -> path.gz: gzipped into path.tmp (upstream's name), renamed into place atomically,
    then the original removed. A crash leaves a .tmp or both files; the planner cleans either."""
    tmp = path + TMP_SUFFIX
    try:
        with open(path, "rb") as src, open(tmp, "wb") as raw:
            with gzip.GzipFile(filename=os.path.basename(path), mode="wb", fileobj=raw) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path + COMPRESS_SUFFIX)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    os.remove(path)


def apply_files(directory: str, plan: Plan) -> None:
    """The file part of a plan before the live log is renamed: removals and compressions."""
    for name in plan.remove:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, name))
    for name in plan.compress:
        compress_file(os.path.join(directory, name))


def clean(log_path: str) -> None:
    """Remove a container's live log and every rotated file (when the container is removed)."""
    directory, live = os.path.split(log_path)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory or "."):
            if name == live or name.startswith(live + "."):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, name))


class LogRotator:
    """Checks every running container's log every `interval` seconds and rotates the big ones."""

    def __init__(
        self,
        runtime: RuntimeClient,
        policy: Policy,
        *,
        interval: float = MONITOR_SECONDS,
        clock: Callable[[], datetime.datetime] = datetime.datetime.now,
    ) -> None:
        self.runtime = runtime
        self.policy = policy
        self.interval = interval
        self.clock = clock

    async def run(self) -> None:
        if self.policy.max_bytes <= 0:
            log.info("container log rotation disabled (containerLogMaxSize is 0)")
            await asyncio.Event().wait()  # a supervised loop must not return
        while True:
            await self.rotate_all()
            await asyncio.sleep(self.interval)

    async def rotate_all(self) -> int:
        """One round over the running containers; the number of logs rotated."""
        running = api.ContainerFilter(state=api.ContainerStateValue(state=api.CONTAINER_RUNNING))
        try:
            containers = await self.runtime.list_containers(filter=running)
        except CRIError as e:
            log.warning("log rotation: listing containers failed: %s", e)
            return 0
        rotated = 0
        for c in containers:
            try:
                status = (await self.runtime.container_status(c.id)).status
                if status.log_path and await self.rotate(c.id, status.log_path):
                    rotated += 1
            except (CRIError, OSError) as e:
                log.warning("log rotation: container %s: %s", c.id, e)
        return rotated

    async def rotate(self, container_id: str, log_path: str) -> bool:
        """Rotate one container's log if it is due; True when it was rotated."""
        try:
            size = (await asyncio.to_thread(os.stat, log_path)).st_size
        except FileNotFoundError:
            # A rotation that renamed the file but could not reopen it: ask the runtime again.
            await self.runtime.reopen_container_log(container_id)
            size = (await asyncio.to_thread(os.stat, log_path)).st_size
        directory, live = os.path.split(log_path)
        listing = await asyncio.to_thread(os.listdir, directory or ".")
        plan = plan_rotation(live, listing, size, self.policy, self.clock())
        if plan is None or plan.rotate_to is None:
            return False
        await asyncio.to_thread(apply_files, directory, plan)
        rotated = os.path.join(directory, plan.rotate_to)
        await asyncio.to_thread(os.rename, log_path, rotated)
        try:
            await self.runtime.reopen_container_log(container_id)
        except CRIError:
            # Put it back so that the next round tries again (upstream does the same).
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.rename, rotated, log_path)
            raise
        log.info("rotated log of container %s to %s", container_id, plan.rotate_to)
        return True
