"""Reads the JUnit XML that ginkgo writes for e2e.test into plain results.
Pure: XML text in, SpecResult records out; knows nothing of areas or rendering.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
NOT_SELECTED = "not run in this pass (filtered out by focus/skip, or the run stopped first)"
# ginkgo v2 statuses that mean the spec did not pass although it ran.
_FAILED_STATUSES = {"failed", "panicked", "timedout", "interrupted", "aborted"}
_SUITE_NODES = re.compile(r"^\[(Synchronized)?(Before|After)Suite\]|^\[ReportAfterSuite\]")


class JUnitError(ValueError):
    """The report is not JUnit XML as ginkgo writes it; the message names the file."""


@dataclass(frozen=True)
class SpecResult:
    """One spec's outcome: its full name, passed/failed/skipped, seconds, first reason line."""

    name: str
    status: str
    duration: float
    reason: str = ""
    detail: str = ""
    """The whole failure text (message, description, the spec's timeline), for evidence."""
    ginkgo_status: str = ""
    """What ginkgo said (failed, timedout, panicked, ...), kept for the table."""


_SQUASH_LIMIT = 300


def first_line(text: str) -> str:
    """The first non-empty line, without ginkgo's [FAILED]/[PANICKED] prefix. A gomega message
    whose first line is a bare `Expected` is squashed into one line (an Event's reason and
    message, or the whole comparison) so the line says something."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    lines[0] = re.sub(r"^\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\]\s*", "", lines[0])
    if lines[0].rstrip(":") != "Expected":
        return lines[0]
    fields = _yaml_fields(lines, ("reason", "message"))
    if "<*v1.Event" in text and fields:
        return f"unexpected Event {fields.get('reason', '?')}: {fields.get('message', '')}"
    squashed = re.sub(r"\s*\|\s*0x[0-9a-f]+", "", " ".join(lines))
    return squashed if len(squashed) <= _SQUASH_LIMIT else squashed[: _SQUASH_LIMIT - 3] + "..."


def _yaml_fields(lines: list[str], keys: tuple[str, ...]) -> dict[str, str]:
    """First value of each key in gomega's YAML dump, folded continuation lines joined."""
    out: dict[str, str] = {}
    for i, ln in enumerate(lines):
        m = re.match(r"^(\w+): (.*)$", ln)
        if not m or m.group(1) not in keys or m.group(1) in out:
            continue
        value = [m.group(2)]
        for more in lines[i + 1 :]:
            if re.match(r"^[\w-]+:( |$)", more):
                break
            value.append(more)
        out[m.group(1)] = " ".join(value).strip("'\" ")
    return out


def spec_name(raw: str) -> str:
    """ginkgo writes `[It] text [label, label]`; the table uses the text alone."""
    name = re.sub(r"^\[It\]\s*", "", raw.strip())
    return re.sub(r"\s+\[[^\[\]]*,[^\[\]]*\]$", "", name).strip()


def parse(xml_text: str, *, source: str = "junit") -> list[SpecResult]:
    """Every test case of the report; suite setup nodes are kept only when they failed."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        raise JUnitError(f"{source}: not XML: {e}") from e
    if root.tag not in ("testsuites", "testsuite"):
        raise JUnitError(f"{source}: root element is <{root.tag}>, not <testsuites>")
    out = []
    for case in root.iter("testcase"):
        name = spec_name(case.get("name", ""))
        if not name:
            continue
        try:
            duration = float(case.get("time", "0") or 0)
        except ValueError:
            duration = 0.0
        gstatus = (case.get("status") or "").lower()
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None or gstatus in _FAILED_STATUSES:
            msg = failure.get("message", "") if failure is not None else ""
            body = (failure.text or "") if failure is not None else ""
            status = FAILED
            reason = first_line(msg) or first_line(body) or gstatus or "failed"
            detail = f"{msg}\n{body}\n{case.findtext('system-err') or ''}"
        elif skipped is not None or gstatus in ("skipped", "pending"):
            status = SKIPPED
            msg = skipped.get("message", "") if skipped is not None else gstatus
            reason = re.sub(r"^skipped\s*-?\s*", "", first_line(msg)) or NOT_SELECTED
            detail = ""
        else:
            status, reason, detail = PASSED, "", ""
        if _SUITE_NODES.match(name) and status != FAILED:
            continue
        out.append(
            SpecResult(
                name=name,
                status=status,
                duration=duration,
                reason=reason,
                detail=detail,
                ginkgo_status=gstatus or status,
            )
        )
    return out


def matching(results: list[SpecResult], pattern: str) -> list[SpecResult]:
    """The results whose name matches `pattern` (ginkgo reports every spec, even filtered ones)."""
    rx = re.compile(pattern)
    return [r for r in results if rx.search(r.name)]


def merge(*runs: list[SpecResult]) -> list[SpecResult]:
    """Join results of several passes; a spec that ran (passed/failed) beats one skipped."""
    best: dict[str, SpecResult] = {}
    for run in runs:
        for r in run:
            old = best.get(r.name)
            if old is None or (old.status == SKIPPED and r.status != SKIPPED):
                best[r.name] = r
    return sorted(best.values(), key=lambda r: r.name)
