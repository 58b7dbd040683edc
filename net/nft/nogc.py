"""Pausing Python's cyclic garbage collector around building big acyclic data (rule sets, ops,
batches), where its collections over the growing heap would cost as much as the work itself."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic GC (if it runs) for the duration of the block; nests."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


__all__ = ["no_gc"]
