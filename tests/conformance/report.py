"""Renders docs/conformance.md from conformance results: summary by area, failures this machine
causes, failures grouped by reason, and every test. Pure: plain data in, Markdown text out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.conformance.areas import AREAS, area_of, group_failures, machine_failures
from tests.conformance.junit import FAILED, PASSED, SKIPPED, SpecResult


@dataclass(frozen=True)
class AgentCrash:
    """The node agent died during the run and was restarted."""

    at: str
    exit_info: str
    log_tail: str


@dataclass(frozen=True)
class RunInfo:
    """What the report says about the run itself."""

    started: str
    wall_seconds: float
    k8s_version: str
    command: Sequence[str]
    passes: Sequence[str]
    """One line per pass: e.g. `parallel (4 workers): 190 specs, 1800 s`."""
    images: Sequence[str] = ()
    facts: dict[str, str] = field(default_factory=dict)
    crashes: Sequence[AgentCrash] = ()
    notes: Sequence[str] = ()
    focus: str = r"\[NodeConformance\]"
    """Which reported specs the table keeps (ginkgo reports filtered-out specs too)."""


def info_to_json(info: RunInfo) -> str:
    """RunInfo as JSON, kept next to the JUnit XML so the report can be rendered again."""
    return json.dumps(dataclasses.asdict(info), indent=2, sort_keys=True)


def info_from_json(text: str) -> RunInfo:
    d = json.loads(text)
    d["crashes"] = [AgentCrash(**c) for c in d.get("crashes", [])]
    return RunInfo(**d)


def cell(text: str, limit: int = 200) -> str:
    """Text safe for one Markdown table cell."""
    t = " ".join(text.split()).replace("|", "\\|")
    return t if len(t) <= limit else t[: limit - 3] + "..."


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def area_rows(results: Sequence[SpecResult]) -> list[tuple[str, int, int, int, int]]:
    """(area, total, passed, failed, skipped) for each area with tests, plus a total row."""
    rows = []
    for area in AREAS:
        rs = [r for r in results if area_of(r.name) == area]
        if rs:
            rows.append((area, len(rs), *_counts(rs)))
    rows.append(("**total**", len(results), *_counts(results)))
    return rows


def _counts(rs: Sequence[SpecResult]) -> tuple[int, int, int]:
    return (
        sum(r.status == PASSED for r in rs),
        sum(r.status == FAILED for r in rs),
        sum(r.status == SKIPPED for r in rs),
    )


def render(results: Sequence[SpecResult], info: RunInfo) -> str:
    passed, failed, skipped = _counts(results)
    ran = passed + failed
    machine = machine_failures(results, info.facts)
    machine_names = {m.test.name for m in machine}
    out = [
        "# Upstream [NodeConformance] tests against pykubelet",
        "",
        "Written by `make conformance` (tests/conformance/); do not edit by hand.",
        "",
        f"- Run started {info.started}, wall time {duration(info.wall_seconds)}; e2e.test "
        f"{info.k8s_version} built from the k8s.io/kubernetes module, same version as the "
        "control plane.",
        f"- **{passed} passed of {ran} run** ({failed} failed, {skipped} skipped; "
        f"{len(results)} specs reported). Of the failures, {len(machine)} are caused by this "
        "machine whatever the node does (listed apart below).",
        f"- Command: `{' '.join(info.command)}`",
    ]
    out += [f"- Pass: {p}" for p in info.passes]
    if info.images:
        out.append(
            "- Images built locally and imported: " + ", ".join(f"`{i}`" for i in info.images)
        )
    out += [f"- {n}" for n in info.notes]
    out += ["", "## Summary by area", "", "| area | tests | passed | failed | skipped |"]
    out.append("|---|---:|---:|---:|---:|")
    out += [f"| {a} | {t} | {p} | {f} | {s} |" for a, t, p, f, s in area_rows(results)]

    out += ["", "## Node agent crashes", ""]
    if info.crashes:
        out.append("The runner restarted the node agent after each of these:")
        out.append("")
        for c in info.crashes:
            out += [
                f"- {c.at}: {c.exit_info}",
                "",
                "  ```",
                *(f"  {ln}" for ln in c.log_tail.splitlines()),
                "  ```",
            ]
    else:
        out.append("None: the node agent ran through the whole run.")

    out += ["", "## Failures this machine causes (whatever the node does)", ""]
    if machine:
        out += ["| test | limit | evidence |", "|---|---|---|"]
        out += [
            f"| {cell(m.test.name)} | {cell(m.limit.explanation)} | {cell(m.evidence, 400)} |"
            for m in machine
        ]
    else:
        out.append("None.")

    node_failures = [r for r in results if r.status == FAILED and r.name not in machine_names]
    out += ["", "## Node failures grouped by first reason line", ""]
    if node_failures:
        out += ["| tests | reason (names and numbers blanked) | examples |", "|---:|---|---|"]
        for sig, rs in group_failures(node_failures).items():
            ex = "; ".join(cell(r.name, 90) for r in rs[:3])
            out.append(f"| {len(rs)} | {cell(sig)} | {ex} |")
    else:
        out.append("None.")

    out += ["", "## Every test", "", "| test | area | result | duration | first reason line |"]
    out.append("|---|---|---|---:|---|")
    for r in sorted(results, key=lambda r: (area_of(r.name), r.name)):
        result = (
            r.status if r.ginkgo_status in ("", r.status) else f"{r.status} ({r.ginkgo_status})"
        )
        if r.name in machine_names:
            result += " (machine)"
        out.append(
            f"| {cell(r.name, 300)} | {area_of(r.name)} | {result} | {duration(r.duration)} "
            f"| {cell(r.reason)} |"
        )
    return "\n".join(out) + "\n"
