"""Supervised forever-tasks: a loop that should never end is restarted with back-off when it fails,
and its failures are logged with the task's name. Owns no business logic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def forever(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    initial_backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> None:
    """Run `body` again whenever it returns or raises; cancellation ends the loop."""
    delay = initial_backoff
    while True:
        try:
            await body()
            log.warning("task %s ended unexpectedly; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s failed; restarting in %.1fs", name, delay)
            await asyncio.sleep(delay)
            delay = min(max_backoff, delay * 2)
            continue
        delay = initial_backoff
        await asyncio.sleep(initial_backoff)


def spawn(tasks: set[asyncio.Task[None]], name: str, body: Callable[[], Awaitable[None]]) -> None:
    """Start a supervised task and keep a strong reference to it in `tasks`."""
    task = asyncio.create_task(forever(name, body), name=name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
