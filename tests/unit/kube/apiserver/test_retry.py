"""Back-off policy: capped exponential delays with full jitter, and Retry-After honoured.
Pure arithmetic; no clock.
"""

from __future__ import annotations

from kube.apiserver.retry import NO_RETRY, RetryPolicy, retryable_status


def test_delay_grows_and_caps() -> None:
    p = RetryPolicy(attempts=10, base=0.5, cap=4.0)
    assert [p.delay(n, 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert p.delay(3, 0.25) == 1.0
    assert p.delay(0, 0.0) == 0.0


def test_retry_after_is_a_floor_up_to_a_limit() -> None:
    p = RetryPolicy(base=0.1, cap=1.0, max_retry_after=5.0)
    assert p.delay(0, 0.5, retry_after=2.0) == 2.0
    assert p.delay(0, 0.5, retry_after=100.0) == 5.0


def test_attempts() -> None:
    p = RetryPolicy(attempts=3)
    assert [p.more(n) for n in range(3)] == [True, True, False]
    assert not NO_RETRY.more(0)


def test_retryable_status() -> None:
    assert [c for c in (400, 404, 409, 410, 429, 500, 501, 503, 504) if retryable_status(c)] == [
        429,
        500,
        503,
        504,
    ]
