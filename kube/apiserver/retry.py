"""When and how long to wait before resending an apiserver request (pure policy, no sleeping).
Knows HTTP codes and attempt counts only; must not import httpx or touch a clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential back-off with full jitter."""

    attempts: int = 5
    """Total tries of one request, the first included."""
    base: float = 0.2
    """Upper bound of the first delay, in seconds; doubles each attempt."""
    cap: float = 10.0
    """No delay (except a server's Retry-After) is longer than this."""
    max_retry_after: float = 60.0
    """A server's Retry-After is honoured up to this many seconds."""

    def delay(self, attempt: int, rnd: float, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (0-based); `rnd` is in [0, 1)."""
        ceiling = min(self.cap, self.base * (2.0 ** max(0, attempt)))
        jittered = ceiling * rnd
        if retry_after is not None:
            return max(jittered, min(retry_after, self.max_retry_after))
        return jittered

    def more(self, attempt: int) -> bool:
        """Whether another try may follow failed try number `attempt` (0-based)."""
        return attempt + 1 < self.attempts


NO_RETRY = RetryPolicy(attempts=1)


def retryable_status(code: int) -> bool:
    """Codes worth resending an idempotent request for: throttling and server-side failures."""
    return code == 429 or code in (500, 502, 503, 504)
