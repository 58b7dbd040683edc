"""The pure cgroup planner: pod resources per QoS class, tiers, kubepods, names."""

from __future__ import annotations

from typing import Any

from kubelet.cgroups import planner
from kubelet.cgroups.planner import Resources

MI = 1 << 20


def _c(
    name: str,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "image": "busybox", "resources": res, **extra}


def _pod(
    *containers: dict[str, Any], init: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    s: dict[str, Any] = {"containers": list(containers), **spec}
    if init:
        s["initContainers"] = init
    return {"metadata": {"uid": "u-1234-5678-9", "name": "p"}, "spec": s}


G1 = {"cpu": "200m", "memory": "64Mi"}
G2 = {"cpu": "300m", "memory": "32Mi"}


def test_guaranteed_pod_gets_shares_quota_and_memory_limit() -> None:
    pod = _pod(_c("a", G1, G1), _c("b", G2, G2))
    assert planner.pod_resources(pod) == Resources(512, 50000, 100000, 96 * MI, None)


def test_guaranteed_requests_default_to_limits() -> None:
    pod = _pod(_c("a", None, G1))
    assert planner.pod_resources(pod) == Resources(204, 20000, 100000, 64 * MI, None)


def test_burstable_without_limits_gets_only_shares() -> None:
    pod = _pod(_c("a", {"cpu": "250m", "memory": "32Mi"}))
    assert planner.pod_resources(pod) == Resources(cpu_shares=256)


def test_burstable_limits_apply_only_when_every_container_declares_them() -> None:
    pod = _pod(
        _c("a", {"cpu": "100m"}, {"cpu": "500m", "memory": "64Mi"}),
        _c("b", {"cpu": "100m"}, {"memory": "32Mi"}),
    )
    res = planner.pod_resources(pod)
    assert res.cpu_shares == 204
    assert res.cpu_quota is None and res.cpu_period is None  # b has no cpu limit
    assert res.memory_limit == 96 * MI  # both declare memory


def test_best_effort_gets_minimum_shares_and_the_pids_limit() -> None:
    res = planner.pod_resources(_pod(_c("a")), pids_limit=1024)
    assert res == Resources(cpu_shares=2, pids_limit=1024)


def test_cpu_limits_not_enforced_leave_quota_unlimited() -> None:
    res = planner.pod_resources(_pod(_c("a", G1, G1)), enforce_cpu_limits=False)
    assert res.cpu_quota == -1


def test_init_container_larger_than_the_app_containers_sets_the_request() -> None:
    pod = _pod(_c("a", {"cpu": "100m"}), init=[_c("i", {"cpu": "700m"})])
    assert planner.pod_requests(pod)["cpu"] == 700


def test_sidecars_add_to_the_app_containers_and_to_later_init_containers() -> None:
    side = _c("s", {"cpu": "100m"}, restartPolicy="Always")
    pod = _pod(_c("a", {"cpu": "200m"}), init=[side, _c("i", {"cpu": "250m"})])
    assert planner.pod_requests(pod)["cpu"] == 350  # max(200 + 100, 250 + 100)


def test_overhead_counts() -> None:
    pod = _pod(_c("a", {"memory": "10Mi"}), overhead={"memory": "5Mi"})
    assert planner.pod_requests(pod)["memory"] == 15 * MI


def test_qos_tiers_follow_burstable_requests() -> None:
    pods = [
        _pod(_c("a", {"cpu": "250m"})),
        _pod(_c("b", {"cpu": "250m", "memory": "1Mi"})),
        _pod(_c("g", G1, G1)),  # Guaranteed: not in the burstable tier
        _pod(_c("e")),
    ]
    tiers = planner.qos_tier_resources(pods)
    assert tiers["Burstable"] == Resources(cpu_shares=512)
    assert tiers["BestEffort"] == Resources(cpu_shares=2)
    assert planner.qos_tier_resources([])["Burstable"] == Resources(cpu_shares=2)


def test_node_resources() -> None:
    assert planner.node_resources(1500, 4 * MI) == Resources(cpu_shares=1536, memory_limit=4 * MI)


def test_names_for_both_drivers() -> None:
    parts = planner.pod_parts("/pykt1", "Burstable", "abc-def-123456789")
    assert planner.cgroupfs_name(parts) == "/pykt1/kubepods/burstable/podabc-def-123456789"
    assert planner.pod_parts("", "Guaranteed", "u" * 12) == ("kubepods", "pod" + "u" * 12)
    assert planner.pod_parts("/r", "BestEffort", "x" * 12, cgroups_per_qos=False) == (
        "r",
        "pod" + "x" * 12,
    )
    assert planner.systemd_name(("kubepods", "burstable", "pod1-2")) == (
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice"
    )
    assert planner.systemd_name(()) == "/"


def test_pod_uid_of() -> None:
    assert planner.pod_uid_of("pod0a1b2c3d-0000") == "0a1b2c3d-0000"
    assert planner.pod_uid_of("burstable") is None
    assert planner.pod_uid_of("pod") is None
    assert planner.pod_uid_of("kubepods-besteffort-pod0a1b2c3d_0000.slice") == "0a1b2c3d-0000"
    assert planner.pod_uid_of("kubepods-pod0a1b2c3d_0000.slice") == "0a1b2c3d-0000"
    assert planner.pod_uid_of("kubepods-besteffort.slice") is None
    assert planner.fs_parts(("a", "b-c"), "systemd") == ("a.slice", "a-b_c.slice")
    assert planner.fs_parts(("a", "b-c"), "cgroupfs") == ("a", "b-c")


def test_cpu_weight_from_shares() -> None:
    assert planner.cpu_shares_to_weight(2) == 1
    assert planner.cpu_shares_to_weight(262144) == 10000
    assert planner.cpu_shares_to_weight(1024) == 39
