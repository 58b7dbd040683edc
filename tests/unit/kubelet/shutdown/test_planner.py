"""The shutdown planner: groups from the config (upstream's migrateConfig), which pod stops in
which group (groupByPriority) with which grace period, and the logind drop-in text.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubelet.shutdown import planner
from kubelet.shutdown.planner import PriorityGrace as P

CRITICAL = planner.SYSTEM_CRITICAL_PRIORITY


def pod(name: str, priority: int | None = None, grace: int | None = 30) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "i"}]}
    if priority is not None:
        spec["priority"] = priority
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"namespace": "ns", "name": name, "uid": name}, "spec": spec}


def test_grace_period_splits_into_regular_and_critical() -> None:
    assert planner.priority_periods(30, 10) == [P(0, 20), P(CRITICAL, 10)]
    assert planner.priority_periods(30, 0) == [P(0, 30), P(CRITICAL, 0)]
    assert planner.priority_periods(30.9, 10) == [P(0, 20), P(CRITICAL, 10)]


@pytest.mark.parametrize(("grace", "critical"), [(0, 0), (0, 5), (10, 20)])
def test_off_without_a_grace_period_or_with_a_bad_split(grace: int, critical: int) -> None:
    assert planner.priority_periods(grace, critical) == []
    assert planner.plan([], [pod("a")]) == []


def test_by_pod_priority_wins_and_is_sorted() -> None:
    by = [P(100000, 10), P(CRITICAL, 20), P(0, 5)]
    assert planner.priority_periods(60, 10, by) == [P(0, 5), P(100000, 10), P(CRITICAL, 20)]
    assert planner.period_requested(planner.priority_periods(60, 10, by)) == 35


@pytest.mark.parametrize(
    ("priority", "group"),
    [(-5, 0), (0, 0), (99999, 0), (100000, 1), (100001, 1), (CRITICAL - 1, 1), (CRITICAL, 2)],
)
def test_group_is_the_highest_not_above_the_pods_priority(priority: int, group: int) -> None:
    periods = [P(0, 5), P(100000, 10), P(CRITICAL, 20)]
    assert planner.group_index(periods, priority) == group


def test_above_the_highest_and_below_the_lowest() -> None:
    periods = [P(10, 5), P(20, 10)]
    assert planner.group_index(periods, 5) == 0
    assert planner.group_index(periods, CRITICAL + 1000) == 1


def test_regular_pods_first_then_critical_with_capped_grace() -> None:
    pods = [
        pod("web", grace=30),
        pod("quick", grace=3),
        pod("node-agent", priority=CRITICAL + 1000, grace=30),
        pod("cluster-dns", priority=CRITICAL, grace=5),
    ]
    steps = planner.plan(planner.priority_periods(30, 10), pods)
    assert [(s.priority, s.seconds) for s in steps] == [(0, 20), (CRITICAL, 10)]
    assert [(k.ref, k.grace) for k in steps[0].kills] == [("ns/web", 20), ("ns/quick", 3)]
    assert [(k.ref, k.grace) for k in steps[1].kills] == [
        ("ns/node-agent", 10),
        ("ns/cluster-dns", 5),
    ]


def test_empty_groups_are_skipped() -> None:
    steps = planner.plan(planner.priority_periods(30, 10), [pod("sys", priority=CRITICAL)])
    assert [(s.priority, len(s.kills)) for s in steps] == [(CRITICAL, 1)]


def test_grace_without_a_pod_value_is_the_groups() -> None:
    assert planner.pod_grace(pod("a", grace=None), 20) == 20
    assert planner.pod_grace(pod("a", grace=20), 20) == 20
    assert planner.pod_grace(pod("a", grace=0), 20) == 0


def test_the_logind_drop_in_text() -> None:
    assert planner.logind_override(30) == (
        "# Kubelet logind override\n[Login]\nInhibitDelayMaxSec=30\n"
    )
