"""Entering a network namespace from the calling thread (setns), and coming back.
Only for worker threads: setns changes the calling thread, so never call this on the event loop."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block with this thread in the netns at `path`; back in the original after."""
    if threading.current_thread() is threading.main_thread():
        raise RuntimeError("netns.entered must not run on the main (event loop) thread")
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
