"""The status of a pod stopped for the node's shutdown, as upstream's killPods writes it: Failed
(unless it had Succeeded), reason Terminated, the shutdown message, DisruptionTarget."""

from __future__ import annotations

from kubelet.pods.decode import pod_from_api
from kubelet.pods.model import PodUID, RuntimePod, Waiting
from kubelet.pods.podstatus import derive_pod_status
from kubelet.shutdown.planner import NODE_SHUTDOWN_MESSAGE, NODE_SHUTDOWN_REASON

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}
FAILURE = Waiting(NODE_SHUTDOWN_REASON, NODE_SHUTDOWN_MESSAGE)


def _status(previous: dict[str, object]) -> dict[str, object]:
    return derive_pod_status(
        pod_from_api(POD),
        RuntimePod(PodUID("u1")),
        previous_status=previous,
        now_iso="2026-01-01T00:00:00Z",
        failure=FAILURE,
    )


def test_a_pod_stopped_for_shutdown_is_failed_terminated_with_disruption_target() -> None:
    status = _status({"phase": "Running"})
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "Terminated",
        "Pod was terminated in response to imminent node shutdown.",
    )
    conditions = status["conditions"]
    assert isinstance(conditions, list)
    [target] = [c for c in conditions if c["type"] == "DisruptionTarget"]
    assert (target["status"], target["reason"], target["message"]) == (
        "True",
        "TerminationByKubelet",
        NODE_SHUTDOWN_MESSAGE,
    )


def test_a_succeeded_pod_stays_succeeded() -> None:
    assert _status({"phase": "Succeeded"})["phase"] == "Succeeded"
