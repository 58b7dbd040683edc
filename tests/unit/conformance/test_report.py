"""Unit tests for tests.conformance.report: the Markdown results table."""

from __future__ import annotations

import dataclasses

from tests.conformance.junit import FAILED, NOT_SELECTED, PASSED, SKIPPED, SpecResult
from tests.conformance.report import (
    AgentCrash,
    RunInfo,
    area_rows,
    cell,
    duration,
    info_from_json,
    info_to_json,
    render,
)

PRIV = "[sig-node] PrivilegedPod [NodeConformance] should enable privileged commands [LinuxOnly]"
RESULTS = [
    SpecResult("[sig-storage] EmptyDir should support (root,0644,tmpfs)", PASSED, 7.5),
    SpecResult(
        "[sig-storage] Secrets should be consumable", FAILED, 61.0, 'pod "s-1a2b3c4d" | stuck'
    ),
    SpecResult(
        "[sig-node] Probing container should be restarted",
        FAILED,
        130.0,
        "timed out",
        ginkgo_status="timedout",
    ),
    SpecResult(PRIV, FAILED, 3.0, "pod failed"),
    SpecResult("[sig-node] Sysctls slow [Slow]", SKIPPED, 0.0, NOT_SELECTED),
]
INFO = RunInfo(
    started="2026-11-23 15:00 UTC",
    wall_seconds=3725.0,
    k8s_version="v1.36.3",
    command=["e2e.test", "--provider=local"],
    passes=["parallel: exit 1 after 60m00s"],
    images=["registry.k8s.io/pause:3.10.2"],
    facts={"no_dummy_link": "Error: Unknown device type."},
    crashes=[
        AgentCrash(at="15:10:00Z", exit_info="pid 7 killed by signal 9", log_tail="boom\nend")
    ],
)


def test_cell_escapes_pipes_and_truncates() -> None:
    assert cell("a | b\n c") == "a \\| b c"
    assert len(cell("x" * 300, 50)) == 50


def test_duration() -> None:
    assert duration(7.25) == "7.2s"
    assert duration(3725) == "62m05s"


def test_area_rows_count_each_status_and_total() -> None:
    rows = area_rows(RESULTS)
    assert ("volumes", 2, 1, 1, 0) in rows
    assert ("probes", 1, 0, 1, 0) in rows
    assert ("security", 2, 0, 1, 1) in rows
    assert rows[-1] == ("**total**", 5, 1, 3, 1)


def test_render_lists_every_test_and_separates_machine_failures() -> None:
    md = render(RESULTS, INFO)
    assert "**1 passed of 4 run** (3 failed, 1 skipped" in md
    assert "1 are caused by this machine" in md
    machine = md.split("## Failures this machine causes")[1].split("##")[0]
    assert "PrivilegedPod" in machine and "Unknown device type" in machine
    node = md.split("## Node failures grouped")[1].split("## Every test")[0]
    assert "PrivilegedPod" not in node
    assert 'pod "<name>" \\| stuck' in node
    table = md.split("## Every test")[1]
    for r in RESULTS:
        assert r.name.replace("|", "\\|") in table
    assert "failed (timedout)" in table
    assert "failed (machine)" in table
    assert "pid 7 killed by signal 9" in md and "  boom" in md
    assert "62m05s" in md


def test_render_without_crashes_or_failures() -> None:
    md = render(RESULTS[:1], RunInfo("t", 1.0, "v1.36.3", ["e2e.test"], []))
    assert "None: the node agent ran through the whole run." in md
    assert "**1 passed of 1 run**" in md


def test_run_info_round_trips_through_json() -> None:
    again = info_from_json(info_to_json(INFO))
    assert again == dataclasses.replace(INFO, crashes=list(INFO.crashes), notes=[])
    assert render(RESULTS, again) == render(RESULTS, INFO)
