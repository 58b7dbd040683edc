"""Node status events as upstream records them: one Normal event per pressure condition change
(a new Node gets one of each), none while a status holds, and the Event object shape."""

from __future__ import annotations

from kubelet.events import NORMAL, event_body, node_status_event
from kubelet.node.status import Health, condition_events, conditions


def test_a_new_node_gets_one_event_per_pressure_condition() -> None:
    new = conditions(Health(), [], "t0")
    assert condition_events([], new) == [
        "NodeHasSufficientMemory",
        "NodeHasNoDiskPressure",
        "NodeHasSufficientPID",
    ]


def test_only_transitions_are_recorded() -> None:
    calm = conditions(Health(), [], "t0")
    assert condition_events(calm, conditions(Health(), calm, "t1")) == []
    pressed = conditions(Health(memory_pressure=True, disk_pressure=True), calm, "t2")
    assert condition_events(calm, pressed) == ["NodeHasInsufficientMemory", "NodeHasDiskPressure"]
    pids = conditions(Health(pid_pressure=True), pressed, "t3")
    assert condition_events(pressed, pids) == [
        "NodeHasSufficientMemory",
        "NodeHasNoDiskPressure",
        "NodeHasInsufficientPID",
    ]


def test_unknown_status_counts_as_a_change() -> None:
    unknown = [{"type": "MemoryPressure", "status": "Unknown"}]
    new = [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]
    assert condition_events(unknown, new) == ["NodeHasSufficientMemory"]


def test_node_event_is_recorded_against_the_node_by_name() -> None:
    e = node_status_event("n1", "NodeHasDiskPressure")
    assert e.type == NORMAL and e.message == "Node n1 status is now: NodeHasDiskPressure"
    body = event_body(e, node="n1", name="n1.1", now="t")
    assert body["metadata"] == {"name": "n1.1", "namespace": "default"}
    assert body["involvedObject"] == {"kind": "Node", "name": "n1", "uid": "n1"}
    assert body["reason"] == "NodeHasDiskPressure" and body["type"] == "Normal"
    assert body["source"] == {"component": "kubelet", "host": "n1"}
