"""Unit tests for tests.conformance.junit: ginkgo JUnit XML into plain results."""

from __future__ import annotations

import pytest

from tests.conformance.junit import (
    FAILED,
    NOT_SELECTED,
    PASSED,
    SKIPPED,
    JUnitError,
    SpecResult,
    first_line,
    matching,
    merge,
    parse,
    spec_name,
)

REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="0" errors="0" failures="1" time="40.5">
  <testsuite name="Kubernetes e2e suite" tests="5" failures="1" time="40.5">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed"
      time="1.0"></testcase>
    <testcase name="[It] [sig-node] Pods should get a host IP [NodeConformance] [Conformance]
 [sig-node, NodeConformance, Conformance]" classname="Kubernetes e2e suite" status="passed"
      time="12.25"></testcase>
    <testcase name="[It] [sig-node] Probing container should be restarted [NodeConformance]
 [sig-node, NodeConformance]" classname="Kubernetes e2e suite" status="failed" time="30">
      <failure message="[FAILED] pod never restarted&#10;second line" type="failed">
[FAILED] pod never restarted
In [It] at: container_probe.go:123</failure>
    </testcase>
    <testcase name="[It] [sig-node] Sysctls should reject [NodeConformance] [sig-node]"
      classname="Kubernetes e2e suite" status="skipped" time="0">
      <skipped message="skipped - Only supported for node OS distro [gci ubuntu]"></skipped>
    </testcase>
    <testcase name="[It] [sig-storage] EmptyDir slow [Slow] [sig-storage, Slow]"
      classname="Kubernetes e2e suite" status="skipped" time="0">
      <skipped message="skipped"></skipped>
    </testcase>
    <testcase name="[It] [sig-node] Hooks hang [NodeConformance] [sig-node, NodeConformance]"
      classname="Kubernetes e2e suite" status="timedout" time="600"></testcase>
  </testsuite>
</testsuites>
"""


def by_name(results: list[SpecResult]) -> dict[str, SpecResult]:
    return {r.name: r for r in results}


def test_parse_statuses_names_and_reasons() -> None:
    rs = by_name(parse(REPORT))
    assert set(rs) == {
        "[sig-node] Pods should get a host IP [NodeConformance] [Conformance]",
        "[sig-node] Probing container should be restarted [NodeConformance]",
        "[sig-node] Sysctls should reject [NodeConformance] [sig-node]",
        "[sig-storage] EmptyDir slow [Slow]",
        "[sig-node] Hooks hang [NodeConformance]",
    }
    ok = rs["[sig-node] Pods should get a host IP [NodeConformance] [Conformance]"]
    assert (ok.status, ok.duration, ok.reason) == (PASSED, 12.25, "")
    bad = rs["[sig-node] Probing container should be restarted [NodeConformance]"]
    assert (bad.status, bad.reason) == (FAILED, "pod never restarted")
    assert "container_probe.go:123" in bad.detail
    skipped = rs["[sig-node] Sysctls should reject [NodeConformance] [sig-node]"]
    assert (skipped.status, skipped.reason) == (
        SKIPPED,
        "Only supported for node OS distro [gci ubuntu]",
    )
    assert rs["[sig-storage] EmptyDir slow [Slow]"].reason == NOT_SELECTED
    hung = rs["[sig-node] Hooks hang [NodeConformance]"]
    assert (hung.status, hung.ginkgo_status, hung.reason) == (FAILED, "timedout", "timedout")


def test_failed_suite_node_is_kept() -> None:
    xml = (
        '<testsuites><testsuite><testcase name="[SynchronizedBeforeSuite]" status="failed" '
        'time="3"><failure message="no nodes Ready">x</failure></testcase></testsuite></testsuites>'
    )
    [r] = parse(xml)
    assert (r.name, r.status, r.reason) == ("[SynchronizedBeforeSuite]", FAILED, "no nodes Ready")


@pytest.mark.parametrize("text", ["not xml <", "<html></html>"])
def test_bad_reports_raise_naming_the_source(text: str) -> None:
    with pytest.raises(JUnitError, match=r"r\.xml"):
        parse(text, source="r.xml")


def test_first_line_and_spec_name() -> None:
    assert first_line("\n\n  [FAILED] boom\nmore") == "boom"
    assert first_line("") == ""
    event = (
        "[FAILED] Expected\n    <*v1.Event | 0x1a1d>: \n        count: 1\n"
        "        reason: SysctlForbidden\n        message: 'forbidden sysctl: x\n"
        "            folded on: two lines'\n        metadata:\n          a: b\nto be nil"
    )
    assert first_line(event) == (
        "unexpected Event SysctlForbidden: forbidden sysctl: x folded on: two lines"
    )
    cmp = "Expected\n    <string>: a\nto equal\n    <string>: b"
    assert first_line(cmp) == "Expected <string>: a to equal <string>: b"
    assert spec_name("[It] a [Conformance] [sig-node, Conformance]") == "a [Conformance]"
    assert spec_name("[It] keeps a single tag [Serial]") == "keeps a single tag [Serial]"


def test_merge_prefers_a_run_over_a_skip_and_matching_filters() -> None:
    skipped = SpecResult("t", SKIPPED, 0.0, NOT_SELECTED)
    ran = SpecResult("t", FAILED, 3.0, "x")
    other = SpecResult("u", PASSED, 1.0)
    assert merge([skipped, other], [ran]) == [ran, other]
    assert merge([ran], [skipped]) == [ran]
    assert matching([ran, other], r"^t$") == [ran]
