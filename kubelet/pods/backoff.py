"""Restart back-off per key (pod UID, container name): exponential delay with a cap and a reset.
Pure: the caller passes every time in (seconds since the epoch); nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

INITIAL_SECONDS = 10.0
MAX_SECONDS = 300.0


@dataclass
class _Entry:
    delay: float
    last_update: float


class BackOff:
    """Upstream's flowcontrol.Backoff, as the kubelet uses it for container restarts.

    Rules:
    - `next(key, event_time)` records a restart of `key` that follows an exit at `event_time`:
      the first one (or the first after a reset) sets the delay to `initial`; each later one
      doubles it, capped at `cap`. The worker calls it when it actually restarts a container,
      with the finish time of the exit it is reacting to.
    - The delay restarts from `initial` when the new event is more than `reset_after` seconds
      after the previous one (upstream's rule: 2 x cap, i.e. 10 minutes for 300 s), so a
      container that ran cleanly for 10 minutes before failing again starts over at 10 s.
    - `is_in_backoff(key, now)` is the time left (0.0 when free) until `last_update + delay`.
    - `gc(now)` forgets entries idle for more than `reset_after`; they would reset anyway.
    """

    def __init__(
        self,
        *,
        initial: float = INITIAL_SECONDS,
        cap: float = MAX_SECONDS,
        reset_after: float | None = None,
    ) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError(f"bad back-off bounds initial={initial} cap={cap}")
        self.initial = initial
        self.cap = cap
        self.reset_after = 2 * cap if reset_after is None else reset_after
        self._entries: dict[Hashable, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> float:
        """The current delay for key, 0.0 when it has none."""
        e = self._entries.get(key)
        return e.delay if e else 0.0

    def next(self, key: Hashable, now: float) -> float:
        """Record a restart after an event at `now`; returns the delay now in force."""
        e = self._entries.get(key)
        if e is None or self._expired(e, now):
            e = _Entry(delay=self.initial, last_update=now)
            self._entries[key] = e
            return e.delay
        e.delay = min(e.delay * 2, self.cap)
        e.last_update = now
        return e.delay

    def is_in_backoff(self, key: Hashable, now: float, *, since: float | None = None) -> float:
        """Seconds left before key may restart (0.0: it may). `since` is the event the wait is
        counted from (the exit's finish time); it defaults to the last recorded event. An
        event newer than the reset window after the last update does not wait."""
        e = self._entries.get(key)
        if e is None:
            return 0.0
        start = e.last_update if since is None else since
        if self._expired(e, start):
            return 0.0
        return max(0.0, start + e.delay - now)

    def reset(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def gc(self, now: float) -> list[Hashable]:
        """Drop entries whose last event is older than the reset window; returns their keys."""
        old = [k for k, e in self._entries.items() if self._expired(e, now)]
        for k in old:
            del self._entries[k]
        return old

    def _expired(self, e: _Entry, now: float) -> bool:
        return now - e.last_update > self.reset_after
