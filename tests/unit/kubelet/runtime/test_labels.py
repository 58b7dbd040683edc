"""Labels and annotations round trips, tolerant read-back, and the container spec hash."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from kubelet.runtime import labels as L
from kubelet.runtime.labels import ContainerRef, PodRef, container_hash
from tests.unit.kubelet.runtime.helpers import BASE_POD, first, make_pod


def test_sandbox_labels_carry_pod_identity_and_pod_labels() -> None:
    got = L.sandbox_labels(BASE_POD)
    assert got == {
        "app": "web",
        L.POD_NAME: "web",
        L.POD_NAMESPACE: "default",
        L.POD_UID: BASE_POD["metadata"]["uid"],
    }
    assert L.sandbox_annotations(BASE_POD) == {"note": "hello"}


def test_identity_keys_win_over_a_pod_label_of_the_same_name() -> None:
    pod = make_pod()
    pod["metadata"]["labels"][L.POD_NAME] = "spoofed"
    assert L.sandbox_labels(pod)[L.POD_NAME] == "web"


def test_pod_ref_round_trip_from_sandbox_and_container_labels() -> None:
    want = PodRef(uid=BASE_POD["metadata"]["uid"], namespace="default", name="web")
    assert L.read_pod_ref(L.sandbox_labels(BASE_POD)) == want
    assert L.read_pod_ref(L.container_labels(BASE_POD, first(BASE_POD))) == want


def test_pod_ref_is_none_for_foreign_sandboxes() -> None:
    assert L.read_pod_ref({"app": "x"}) is None


def test_container_ref_round_trip() -> None:
    pre_stop = {"exec": {"command": ["/bin/sh", "-c", "sleep 1"]}}
    pod = make_pod(
        container={
            "lifecycle": {"preStop": pre_stop},
            "terminationMessagePath": "/tmp/msg",
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )
    c = first(pod)
    ann = L.container_annotations(pod, c, restart_count=3)
    ref = L.read_container_ref(L.container_labels(pod, c), ann)
    assert ref == ContainerRef(
        name="app",
        restart_count=3,
        hash=container_hash(c),
        termination_message_path="/tmp/msg",
        termination_message_policy="FallbackToLogsOnError",
        grace=45,
        pre_stop=pre_stop,
        ports=({"containerPort": 80, "protocol": "TCP"},),
    )
    assert json.loads(ann[L.PRE_STOP_HANDLER]) == pre_stop


def test_container_annotations_omit_unset_optional_keys() -> None:
    pod = make_pod(container={"ports": []})
    del pod["spec"]["terminationGracePeriodSeconds"]
    ann = L.container_annotations(pod, first(pod), restart_count=0)
    assert set(ann) == {
        L.CONTAINER_HASH,
        L.CONTAINER_RESTART_COUNT,
        L.TERMINATION_MESSAGE_PATH,
        L.TERMINATION_MESSAGE_POLICY,
    }
    assert ann[L.TERMINATION_MESSAGE_PATH] == "/dev/termination-log"
    assert ann[L.TERMINATION_MESSAGE_POLICY] == "File"


def test_spec_hash_override_is_written_verbatim() -> None:
    ann = L.container_annotations(BASE_POD, first(BASE_POD), restart_count=0, spec_hash="abc")
    assert ann[L.CONTAINER_HASH] == "abc"


def test_deletion_grace_wins_when_reading_back() -> None:
    pod = make_pod()
    pod["metadata"]["deletionGracePeriodSeconds"] = 5
    ann = L.container_annotations(pod, first(pod), restart_count=0)
    ref = L.read_container_ref(L.container_labels(pod, first(pod)), ann)
    assert ref is not None and ref.grace == 5


GARBLED: list[tuple[dict[str, str], ContainerRef]] = [
    ({}, ContainerRef(name="app")),
    ({L.CONTAINER_RESTART_COUNT: "x"}, ContainerRef(name="app")),
    ({L.CONTAINER_RESTART_COUNT: "-4"}, ContainerRef(name="app")),
    ({L.POD_TERMINATION_GRACE: "soon"}, ContainerRef(name="app", grace=30)),
    (
        {L.POD_TERMINATION_GRACE: "10", L.POD_DELETION_GRACE: "?"},
        ContainerRef(name="app", grace=10),
    ),
    ({L.PRE_STOP_HANDLER: "{not json"}, ContainerRef(name="app")),
    ({L.PRE_STOP_HANDLER: "[1]"}, ContainerRef(name="app")),
    ({L.CONTAINER_PORTS: '{"a": 1}'}, ContainerRef(name="app")),
    (
        {L.CONTAINER_PORTS: '[{"containerPort": 1}, 7]'},
        ContainerRef(name="app", ports=({"containerPort": 1},)),
    ),
    ({L.TERMINATION_MESSAGE_PATH: ""}, ContainerRef(name="app")),
]


@pytest.mark.parametrize(("annotations", "want"), GARBLED)
def test_container_ref_tolerates_missing_and_garbled(
    annotations: dict[str, str], want: ContainerRef
) -> None:
    assert L.read_container_ref({L.CONTAINER_NAME: "app"}, annotations) == want


def test_container_ref_is_none_without_a_name() -> None:
    assert L.read_container_ref({L.POD_UID: "u"}, {}) is None


# ---------------------------------------------------------------------------- hash


def test_hash_is_eight_hex_chars_and_ignores_key_order() -> None:
    a = {"name": "app", "image": "nginx", "args": ["-g", "x"]}
    b = {"args": ["-g", "x"], "image": "nginx", "name": "app"}
    h = container_hash(a)
    assert len(h) == 8 and int(h, 16) >= 0
    assert container_hash(b) == h


def test_hash_is_stable_across_interpreter_runs() -> None:
    code = (
        "from kubelet.runtime.labels import container_hash as h;"
        "print(h({'name': 'a', 'image': 'b'}))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert runs == {container_hash({"name": "a", "image": "b"})}


def test_fnv1a_matches_reference_vectors() -> None:
    assert L.fnv1a_32(b"") == 0x811C9DC5
    assert L.fnv1a_32(b"a") == 0xE40C292C
    assert L.fnv1a_32(b"foobar") == 0xBF9CF968


BASE_C: dict[str, Any] = {"name": "app", "image": "nginx:1.27", "args": ["a"]}

CHANGES: list[tuple[str, dict[str, Any], bool]] = [
    ("image", {"image": "nginx:1.28"}, True),
    ("args", {"args": ["b"]}, True),
    ("command", {"command": ["/bin/x"]}, True),
    ("env", {"env": [{"name": "A", "value": "1"}]}, True),
    ("ports", {"ports": [{"containerPort": 80}]}, True),
    ("resources", {"resources": {"limits": {"cpu": "2"}}}, False),
    ("null field", {"workingDir": None}, False),
    ("empty list", {"command": []}, False),
    ("empty map", {"securityContext": {}}, False),
]


@pytest.mark.parametrize(("what", "change", "differs"), CHANGES, ids=[c[0] for c in CHANGES])
def test_hash_sensitivity(what: str, change: dict[str, Any], differs: bool) -> None:
    assert (container_hash({**BASE_C, **change}) != container_hash(BASE_C)) is differs
