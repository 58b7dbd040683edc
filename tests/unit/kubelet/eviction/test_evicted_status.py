"""The status of an evicted pod: Failed, reason Evicted, the message, DisruptionTarget."""

from __future__ import annotations

from kubelet.pods.decode import pod_from_api
from kubelet.pods.model import PodUID, RuntimePod, Waiting
from kubelet.pods.podstatus import derive_pod_status

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}
MSG = "The node was low on resource: memory. Threshold quantity: 1Gi, available: 10Mi. "


def test_evicted_pod_status() -> None:
    status = derive_pod_status(
        pod_from_api(POD),
        RuntimePod(PodUID("u1")),
        previous_status={"phase": "Running"},
        now_iso="2026-01-01T00:00:00Z",
        failure=Waiting("Evicted", MSG),
    )
    assert (status["phase"], status["reason"], status["message"]) == ("Failed", "Evicted", MSG)
    target = [c for c in status["conditions"] if c["type"] == "DisruptionTarget"]
    assert len(target) == 1
    assert target[0]["status"] == "True"
    assert target[0]["reason"] == "TerminationByKubelet"
    assert target[0]["message"] == MSG
    again = derive_pod_status(
        pod_from_api(POD),
        RuntimePod(PodUID("u1")),
        previous_status=status,
        now_iso="2026-01-01T00:00:10Z",
        failure=Waiting("Evicted", MSG),
    )
    assert [c["type"] for c in again["conditions"]].count("DisruptionTarget") == 1
    assert again["phase"] == "Failed"
