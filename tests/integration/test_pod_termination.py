"""How pods end: termination messages (file and FallbackToLogsOnError) and activeDeadlineSeconds."""

from __future__ import annotations

from cluster.spec import ClusterSpec

from .podutil import container, create_pod, cstatus, pod_body, wait_pod


def _terminated(pod: dict[str, object], name: str = "c") -> dict[str, object]:
    state = cstatus(pod, name).get("state", {})
    result: dict[str, object] = state.get("terminated", {})
    return result


def test_termination_message_from_file_and_custom_path(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "echo -n 'all done' > /tmp/msg; exit 0")
    c["terminationMessagePath"] = "/tmp/msg"
    create_pod(cluster_spec, ns, pod_body("msg-file", [c], restart="Never"))
    pod = wait_pod(cluster_spec, ns, "msg-file", lambda p: bool(_terminated(p)), 30, "terminated")
    assert _terminated(pod)["message"] == "all done"


def test_fallback_to_logs_on_error(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "echo first; echo 'last words'; exit 7")
    c["terminationMessagePolicy"] = "FallbackToLogsOnError"
    create_pod(cluster_spec, ns, pod_body("msg-logs", [c], restart="Never"))
    pod = wait_pod(cluster_spec, ns, "msg-logs", lambda p: bool(_terminated(p)), 30, "terminated")
    term = _terminated(pod)
    assert term["exitCode"] == 7
    assert term["message"] == "first\nlast words\n"  # upstream keeps each full line's newline


def test_fallback_to_logs_keeps_an_unfinished_last_line(cluster_spec: ClusterSpec, ns: str) -> None:
    # The upstream conformance case: `echo -n DONE; false` leaves a line without its newline,
    # which containerd writes with the partial (P) tag.
    c = container("c", "echo -n DONE; false")
    c["terminationMessagePolicy"] = "FallbackToLogsOnError"
    create_pod(cluster_spec, ns, pod_body("msg-partial", [c], restart="Never"))
    pod = wait_pod(
        cluster_spec, ns, "msg-partial", lambda p: bool(_terminated(p)), 30, "terminated"
    )
    assert _terminated(pod)["exitCode"] == 1
    assert _terminated(pod)["message"] == "DONE"


def test_default_path_without_fallback_gives_no_log_text(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    create_pod(
        cluster_spec,
        ns,
        pod_body("msg-none", [container("c", "echo noise; exit 3")], restart="Never"),
    )
    pod = wait_pod(cluster_spec, ns, "msg-none", lambda p: bool(_terminated(p)), 30, "terminated")
    assert "noise" not in str(_terminated(pod).get("message", ""))


def test_active_deadline_fails_pod(cluster_spec: ClusterSpec, ns: str) -> None:
    body = pod_body("deadline", [container("c", "sleep 3600")], restart="Never", grace=1)
    body["spec"]["activeDeadlineSeconds"] = 3
    create_pod(cluster_spec, ns, body)
    pod = wait_pod(
        cluster_spec, ns, "deadline", lambda p: p["status"].get("phase") == "Failed", 30, "Failed"
    )
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert "running" not in cstatus(pod, "c").get("state", {})
