"""Sorts conformance results: the area a test exercises, failures this machine causes whatever
the node does (with evidence), and a reason signature that groups failures. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tests.conformance.junit import FAILED, SpecResult

AREAS = ("volumes", "probes", "hooks", "env", "pods", "runtime", "security", "networking", "other")

# First match wins; patterns are matched case-sensitively against the full spec name.
_AREA_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("networking", ("[sig-network]",)),
    ("volumes", ("[sig-storage]",)),
    ("probes", ("Probing ",)),
    ("hooks", ("Lifecycle Hook", "lifecycle hook")),
    (
        "env",
        (
            "Variable Expansion",
            "environment variable",
            "via the environment",
            "in env vars",
            "from pods in env",
            "envFrom",
            "Downward API should provide",
        ),
    ),
    (
        "security",
        (
            "Security Context",
            "Sysctls",
            "PrivilegedPod",
            "PodOSRejection",
        ),
    ),
    (
        "runtime",
        (
            "Container Runtime",
            "Containers should",
            "InitContainer",
            "Ephemeral Containers",
            "RuntimeClass",
            "KubeletManagedEtcHosts",
            "Kubelet when scheduling",
            "NodeLease",
            "Restartable",
        ),
    ),
    ("pods", ("Pods", "Pod ", "PodTemplates", "hostname", "ConfigMap", "Secrets")),
)


def area_of(name: str) -> str:
    """The area (one of AREAS) a spec belongs to, from its full name."""
    for area, needles in _AREA_RULES:
        if any(n in name for n in needles):
            return area
    return "other"


@dataclass(frozen=True)
class MachineLimit:
    """A limit of this machine that fails some tests whatever the node agent does."""

    key: str
    """Names the host fact whose presence proves the limit (see the runner's host probes)."""
    name_patterns: tuple[str, ...]
    """Regexes over the spec name selecting the tests it breaks."""
    explanation: str
    detail_pattern: str = ""
    """Regex over the failure text; its first match is quoted next to the host evidence."""


MACHINE_LIMITS: tuple[MachineLimit, ...] = (
    MachineLimit(
        key="no_dummy_link",
        name_patterns=(r"PrivilegedPod .*should enable privileged commands",),
        explanation="the test runs `ip link add dummy1 type dummy` in a privileged container "
        "and expects it to succeed; this kernel has no dummy link type",
        detail_pattern=r"RTNETLINK answers: [^\n\"]*",
    ),
    MachineLimit(
        key="no_registry",
        name_patterns=(r"Container Runtime .*should be able to pull image \[NodeConformance\]$",),
        explanation="the test pulls an image from registry.k8s.io with imagePullPolicy Always; "
        "no registry is reachable from this machine",
        detail_pattern=r"(Failed to pull image|failed to pull|ErrImagePull|dial tcp)[^\n]*",
    ),
)


@dataclass(frozen=True)
class MachineFailure:
    test: SpecResult
    limit: MachineLimit
    evidence: str


def machine_failures(
    results: Iterable[SpecResult],
    facts: Mapping[str, str],
    limits: Sequence[MachineLimit] = MACHINE_LIMITS,
) -> list[MachineFailure]:
    """Failed tests a proven machine limit explains; `facts` maps limit keys to the evidence
    the runner measured (a key is present only when the limit was observed on this host)."""
    out = []
    for r in results:
        if r.status != FAILED:
            continue
        for lim in limits:
            if lim.key in facts and any(re.search(p, r.name) for p in lim.name_patterns):
                evidence = facts[lim.key]
                m = re.search(lim.detail_pattern, r.detail) if lim.detail_pattern else None
                if m:
                    evidence += f"; the test says: {m.group(0).strip()[:300]}"
                out.append(MachineFailure(test=r, limit=lim, evidence=evidence))
                break
    return out


_SIGNATURE_SUBS: tuple[tuple[str, str], ...] = (
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uid>"),
    (r"\b(\d{1,3}\.){3}\d{1,3}(:\d+)?\b", "<ip>"),
    (r'"[a-z0-9]([-a-z0-9.]*[a-z0-9])?-[a-z0-9]{4,}"', '"<name>"'),
    (r"\b[a-z][-a-z0-9]*-[0-9a-f]{5,}\b", "<name>"),
    (r"\b\d+(\.\d+)?(ms|s|m)\b", "<dur>"),
    (r"\b\d+\b", "<n>"),
)


def signature(reason: str, limit: int = 140) -> str:
    """A failure's first line with names, ids, addresses and numbers blanked, for grouping."""
    s = reason
    for pat, rep in _SIGNATURE_SUBS:
        s = re.sub(pat, rep, s)
    s = re.sub(r"\s+", " ", s).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


def group_failures(results: Iterable[SpecResult]) -> dict[str, list[SpecResult]]:
    """Failed tests keyed by reason signature, biggest group first."""
    groups: dict[str, list[SpecResult]] = {}
    for r in results:
        if r.status == FAILED:
            groups.setdefault(signature(r.reason), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))
