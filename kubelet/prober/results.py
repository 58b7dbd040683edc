"""Probe outcomes and the threshold counter that turns a run of outcomes into a cached result.
Pure: no I/O, no clock, no tasks; it must not run probes or know about pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kubelet.prober.spec import Kind, ProbeSpec


class Result(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    WARNING = "warning"
    """Counts as success; an event says why (a redirect to another host)."""
    UNKNOWN = "unknown"
    """The probe itself errored: nothing is concluded and the counters stay as they are."""


@dataclass(frozen=True)
class Outcome:
    result: Result
    detail: str = ""


def initial_value(kind: Kind) -> bool:
    """The cached verdict before any probe decided: readiness false, liveness healthy,
    startup not yet started."""
    return kind is Kind.LIVENESS


@dataclass
class ThresholdCounter:
    """Upstream's worker counters: a verdict changes only after `successThreshold` successes or
    `failureThreshold` failures in a row."""

    spec: ProbeSpec
    value: bool = False
    last: bool | None = None
    run: int = 0

    def __post_init__(self) -> None:
        self.value = initial_value(self.spec.kind)

    def observe(self, result: Result) -> bool | None:
        """Count one outcome; returns the new verdict when it is set now, else None (it is
        returned even when equal to the old one: upstream sets the cache each time)."""
        if result is Result.UNKNOWN:
            return None
        ok = result is not Result.FAILURE
        if self.last is ok:
            self.run += 1
        else:
            self.last, self.run = ok, 1
        needed = self.spec.success_threshold if ok else self.spec.failure_threshold
        if self.run < needed:
            return None
        self.value = ok
        return ok
