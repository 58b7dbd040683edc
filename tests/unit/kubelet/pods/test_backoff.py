"""Restart back-off on a fake clock: doubling, cap, reset window, garbage collection."""

from __future__ import annotations

import pytest

from kubelet.pods.backoff import BackOff

KEY = ("uid", "a")


def test_unknown_key_is_free() -> None:
    bo = BackOff()
    assert bo.is_in_backoff(KEY, 0.0) == 0.0
    assert bo.get(KEY) == 0.0
    assert KEY not in bo


def test_doubles_from_ten_to_cap() -> None:
    bo = BackOff()
    delays = [bo.next(KEY, float(t)) for t in range(8)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_remaining_counts_from_last_event() -> None:
    bo = BackOff()
    bo.next(KEY, 100.0)
    assert bo.is_in_backoff(KEY, 104.0) == 6.0
    assert bo.is_in_backoff(KEY, 110.0) == 0.0
    assert bo.is_in_backoff(KEY, 104.0, since=102.0) == 8.0


def test_resets_after_twice_the_cap() -> None:
    bo = BackOff()
    for t in (0.0, 1.0, 2.0):
        bo.next(KEY, t)
    assert bo.get(KEY) == 40
    assert bo.next(KEY, 2.0 + 600.0) == 80  # exactly at the window: no reset
    assert bo.next(KEY, 602.0 + 600.5) == 10


def test_event_after_reset_window_is_not_in_backoff() -> None:
    bo = BackOff()
    bo.next(KEY, 0.0)
    assert bo.is_in_backoff(KEY, 700.0, since=700.0) == 0.0


def test_reset_and_gc() -> None:
    bo = BackOff()
    bo.next(KEY, 0.0)
    bo.next(("uid", "b"), 500.0)
    bo.reset(("uid", "b"))
    assert len(bo) == 1
    bo.next(("uid", "c"), 500.0)
    assert bo.gc(650.0) == [KEY]
    assert KEY not in bo and ("uid", "c") in bo


def test_custom_bounds() -> None:
    bo = BackOff(initial=1.0, cap=4.0, reset_after=5.0)
    assert [bo.next(KEY, t) for t in (0.0, 1.0, 2.0, 3.0)] == [1, 2, 4, 4]
    assert bo.next(KEY, 9.0) == 1


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 10.0), (10.0, 5.0)])
def test_bad_bounds(initial: float, cap: float) -> None:
    with pytest.raises(ValueError):
        BackOff(initial=initial, cap=cap)
