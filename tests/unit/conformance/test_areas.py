"""Unit tests for tests.conformance.areas: areas, machine limits, failure signatures."""

from __future__ import annotations

import pytest

from tests.conformance.areas import (
    MACHINE_LIMITS,
    area_of,
    group_failures,
    machine_failures,
    signature,
)
from tests.conformance.junit import FAILED, PASSED, SpecResult


@pytest.mark.parametrize(
    ("name", "area"),
    [
        (
            "[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance]",
            "volumes",
        ),
        (
            "[sig-storage] Downward API volume should provide podname only [NodeConformance]",
            "volumes",
        ),
        (
            "[sig-node] Probing container should be restarted with a /healthz http liveness probe",
            "probes",
        ),
        (
            "[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should",
            "hooks",
        ),
        ("[sig-node] Downward API should provide pod UID as env vars [NodeConformance]", "env"),
        ("[sig-node] Variable Expansion should allow composing env vars into new env vars", "env"),
        ("[sig-node] Secrets should be consumable from pods in env vars [NodeConformance]", "env"),
        ("[sig-node] Pods should get a host IP [NodeConformance] [Conformance]", "pods"),
        (
            "[sig-node] Container Runtime blackbox test on terminated container should report",
            "runtime",
        ),
        (
            "[sig-node] InitContainer [NodeConformance] should invoke init containers",
            "runtime",
        ),
        (
            "[sig-node] Security Context When creating a container with runAsUser should run",
            "security",
        ),
        (
            "[sig-node] PrivilegedPod [NodeConformance] should enable privileged commands",
            "security",
        ),
        (
            "[sig-network] Networking Granular Checks: Pods should function for intra-pod",
            "networking",
        ),
        ("[SynchronizedBeforeSuite]", "other"),
    ],
)
def test_area_of(name: str, area: str) -> None:
    assert area_of(name) == area


PRIV = "[sig-node] PrivilegedPod [NodeConformance] should enable privileged commands [LinuxOnly]"
PULL = (
    "[sig-node] Container Runtime blackbox test when running a container with a new image "
    "[Serial] should be able to pull image [NodeConformance]"
)


def test_machine_failures_need_a_failed_test_and_the_host_fact() -> None:
    results = [
        SpecResult(PRIV, FAILED, 5.0, "pod failed", detail="ip: RTNETLINK answers: Not supported"),
        SpecResult(
            PULL,
            FAILED,
            60.0,
            "timed out",
            detail='x\nFailed to pull image "a": dial tcp: lookup registry.k8s.io: no such host\n',
        ),
        SpecResult("[sig-node] Pods should get a host IP", FAILED, 1.0, "x"),
        SpecResult(PRIV + " again", PASSED, 1.0),
    ]
    facts = {"no_dummy_link": "exit 2, Error: Unknown device type.", "no_registry": "no registry"}
    found = machine_failures(results, facts)
    assert [(m.test.name, m.limit.key) for m in found] == [
        (PRIV, "no_dummy_link"),
        (PULL, "no_registry"),
    ]
    assert found[0].evidence == (
        "exit 2, Error: Unknown device type.; the test says: RTNETLINK answers: Not supported"
    )
    assert "no such host" in found[1].evidence
    # Without the host fact nothing is blamed on the machine.
    assert machine_failures(results, {}) == []
    assert {lim.key for lim in MACHINE_LIMITS} == {"no_dummy_link", "no_registry"}


def test_signature_blanks_names_numbers_and_addresses() -> None:
    a = signature('pod "pod-9f3a1c2b" on 10.200.0.7:8080 not running after 300s (uid 1234)')
    b = signature('pod "pod-77aa01ff" on 10.200.0.9:8080 not running after 120s (uid 99)')
    assert a == b
    assert "<ip>" in a and "<dur>" in a
    assert len(signature("x" * 500)) == 140


def test_group_failures_biggest_first() -> None:
    rs = [
        SpecResult("a", FAILED, 1, "timed out after 5s"),
        SpecResult("b", FAILED, 1, "timed out after 9s"),
        SpecResult("c", FAILED, 1, "no logs"),
        SpecResult("d", PASSED, 1),
    ]
    groups = group_failures(rs)
    assert [(k, [r.name for r in v]) for k, v in groups.items()] == [
        ("timed out after <dur>", ["a", "b"]),
        ("no logs", ["c"]),
    ]
