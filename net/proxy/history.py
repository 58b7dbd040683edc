"""The last N applied rulesets (what /debug/rules and `pykubelet net rules` show): time, duration,
full or partial, the changes it applied and any error. Plain data in memory, nothing else.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

DEFAULT_SIZE = 20


@dataclass(frozen=True)
class SyncRecord:
    """One sync: what it applied and how it went."""

    time: float
    """Wall-clock start (seconds since the epoch)."""
    duration: float
    """Seconds from start to the end of the kernel work (restore, batch or ops)."""
    full: bool
    services: int
    """Services in the state it applied."""
    changed: tuple[str, ...] = ()
    """Services (`ns/name`) whose rules this sync added, rewrote or removed."""
    removed: tuple[str, ...] = ()
    """Chains deleted by this sync."""
    lines: int = 0
    """Size of what was sent: lines of the iptables-restore input, or ops of a batch."""
    error: str = ""
    """Why it failed ("" when applied)."""
    reasons: tuple[str, ...] = ()
    """What triggered it: changed objects (`Service ns/name`...), `periodic`, `startup`."""
    conntrack_flushed: int = 0
    text: str = field(default="", repr=False)
    """What was sent, as text (kept only for the newest records)."""

    def to_json(self, *, with_text: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_text:
            data.pop("text")
        data["changed"] = list(self.changed)
        data["removed"] = list(self.removed)
        data["reasons"] = list(self.reasons)
        return data


class History:
    """A ring of the newest `size` records; the text of only the newest `keep_text` is kept."""

    def __init__(self, size: int = DEFAULT_SIZE, *, keep_text: int = 3) -> None:
        self._records: deque[SyncRecord] = deque(maxlen=size)
        self._keep_text = keep_text

    def add(self, record: SyncRecord) -> None:
        self._records.append(record)
        if len(self._records) > self._keep_text:
            old = self._records[-1 - self._keep_text]
            if old.text:
                self._records[-1 - self._keep_text] = replace(old, text="")

    def __iter__(self) -> Iterator[SyncRecord]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def last(self) -> SyncRecord | None:
        return self._records[-1] if self._records else None

    def to_json(self, *, with_text: bool = False) -> list[dict[str, Any]]:
        """Newest first."""
        return [r.to_json(with_text=with_text) for r in reversed(self._records)]
