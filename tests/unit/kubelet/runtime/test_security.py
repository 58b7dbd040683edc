"""criconfig's security and QoS parts: QoS class (of a pod dict), oom_score_adj, AppArmor,
procMount paths, and the whole security context as one container config carries it.
"""

from __future__ import annotations

from typing import Any

import pytest

from cri import api
from kubelet.pods.model import PodSpecError
from kubelet.pods.qos import qos_class_of
from kubelet.runtime.criconfig import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    apparmor_profile,
    container_config,
    container_resources,
    container_security_context,
    oom_score_adj,
)
from tests.unit.kubelet.runtime.helpers import first, make_pod

GI = 1 << 30


def res(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> Any:
    out: dict[str, Any] = {}
    if requests is not None:
        out["requests"] = requests
    if limits is not None:
        out["limits"] = limits
    return out


def pod_with(*resources: Any, init: Any = None) -> dict[str, Any]:
    pod = make_pod()
    base = first(pod)
    pod["spec"]["containers"] = [
        {**base, "name": f"c{i}", "resources": r} for i, r in enumerate(resources)
    ]
    if init is not None:
        pod["spec"]["initContainers"] = [{**base, "name": "init", **init}]
    return pod


# ---- QoS ----------------------------------------------------------------------------------
BOTH = {"cpu": "500m", "memory": "256Mi"}


@pytest.mark.parametrize(
    ("resources", "want"),
    [
        ([res()], "BestEffort"),
        ([res({"cpu": "0"})], "BestEffort"),
        ([res(BOTH, BOTH)], "Guaranteed"),
        ([res(None, BOTH)], "Guaranteed"),
        ([res(BOTH, BOTH), res()], "Burstable"),
        ([res({"cpu": "250m"}, BOTH)], "Burstable"),
        ([res({"memory": "1Gi"})], "Burstable"),
        ([res(None, {"memory": "1Gi"})], "Burstable"),
        ([res(BOTH, BOTH), res(BOTH, BOTH)], "Guaranteed"),
    ],
)
def test_pod_qos(resources: list[Any], want: str) -> None:
    assert qos_class_of(pod_with(*resources)) == want


def test_init_containers_count_for_qos() -> None:
    pod = pod_with(res(BOTH, BOTH), init={"resources": res({"memory": "1Gi"})})
    assert qos_class_of(pod) == "Burstable"


# ---- oom_score_adj ------------------------------------------------------------------------
def test_guaranteed_and_best_effort_scores() -> None:
    g = pod_with(res(BOTH, BOTH))
    assert oom_score_adj(g, first(g), GI) == -997
    b = pod_with(res())
    assert oom_score_adj(b, first(b), GI) == 1000


@pytest.mark.parametrize(
    ("memory", "want"),
    [
        ("256Mi", 750),  # 1000 - 1000*256Mi/1Gi
        ("1Gi", 3),  # floor 1000 + -997 (upstream's code; docs say 2)
        ("2Gi", 3),
        ("1", 999),  # 1000 would equal BestEffort: 999
        ("0", 999),  # burstable only by its cpu
    ],
)
def test_burstable_score(memory: str, want: int) -> None:
    pod = pod_with(res({"cpu": "100m", "memory": memory}))
    assert oom_score_adj(pod, first(pod), GI) == want


def test_node_critical_pods_score_like_guaranteed() -> None:
    pod = pod_with(res({"memory": "100Mi"}))
    pod["spec"]["priorityClassName"] = "system-node-critical"
    assert oom_score_adj(pod, first(pod), GI) == -997


def test_sidecar_scores_no_higher_than_the_smallest_regular_container() -> None:
    pod = pod_with(
        res({"memory": "512Mi"}),
        init={"restartPolicy": "Always", "resources": res({"memory": "256Mi"})},
    )
    sidecar = pod["spec"]["initContainers"][0]
    assert oom_score_adj(pod, sidecar, GI) == 500
    sidecar.pop("restartPolicy")  # a plain init container keeps its own score
    assert oom_score_adj(pod, sidecar, GI) == 750


def test_resources_carry_cpu_memory_and_oom() -> None:
    pod = pod_with(res({"cpu": "250m", "memory": "256Mi"}, {"cpu": "1500m", "memory": "512Mi"}))
    r = container_resources(pod, first(pod), memory_capacity=GI)
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period) == (256, 150000, 100000)
    assert (r.memory_limit_in_bytes, r.oom_score_adj) == (512 << 20, 750)
    assert container_resources(pod, first(pod)).oom_score_adj == 0  # no capacity: not set


def test_container_config_passes_memory_capacity() -> None:
    pod = pod_with(res())
    cfg = container_config(pod, first(pod), attempt=0, restart_count=0, memory_capacity=GI)
    assert cfg.linux.resources.oom_score_adj == 1000


# ---- AppArmor -----------------------------------------------------------------------------
def _aa(pod_profile: Any = None, own: Any = None, annotation: str | None = None) -> Any:
    pod = make_pod()
    if pod_profile is not None:
        pod["spec"]["securityContext"] = {"appArmorProfile": pod_profile}
    if own is not None:
        first(pod)["securityContext"] = {"appArmorProfile": own}
    if annotation is not None:
        key = "container.apparmor.security.beta.kubernetes.io/app"
        pod["metadata"]["annotations"][key] = annotation
    return apparmor_profile(pod, first(pod))


def test_apparmor_unset_is_left_to_the_runtime() -> None:
    assert _aa() is None


def test_apparmor_fields_container_over_pod() -> None:
    assert _aa({"type": "Unconfined"}) == api.SecurityProfile(
        profile_type=api.SecurityProfile.Unconfined
    )
    want = api.SecurityProfile(profile_type=api.SecurityProfile.Localhost, localhost_ref="k8s-x")
    assert _aa({"type": "Unconfined"}, {"type": "Localhost", "localhostProfile": "k8s-x"}) == want


def test_apparmor_annotation_fallback() -> None:
    rd = api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault)
    assert _aa(annotation="runtime/default") == rd
    assert _aa(annotation="localhost/p1") == api.SecurityProfile(
        profile_type=api.SecurityProfile.Localhost, localhost_ref="p1"
    )
    assert _aa({"type": "RuntimeDefault"}, annotation="unconfined") == rd  # field wins


@pytest.mark.parametrize(
    ("pod_profile", "own", "annotation"),
    [
        (None, {"type": "Bogus"}, None),
        ({"type": "Localhost"}, None, None),
        (None, None, "localhost/"),
    ],
)
def test_apparmor_errors(pod_profile: Any, own: Any, annotation: str | None) -> None:
    with pytest.raises(PodSpecError):
        _aa(pod_profile, own, annotation)


# ---- procMount and the whole security context ---------------------------------------------
def _sc(c_sc: dict[str, Any], pod_sc: dict[str, Any] | None = None) -> Any:
    pod = make_pod({"securityContext": pod_sc or {}}, {"securityContext": c_sc})
    return container_security_context(pod, first(pod))


def test_proc_mount_default_masks_and_unmasked_does_not() -> None:
    sc = _sc({})
    assert list(sc.masked_paths) == list(DEFAULT_MASKED_PATHS)
    assert list(sc.readonly_paths) == list(DEFAULT_READONLY_PATHS)
    assert "/proc/kcore" in sc.masked_paths and "/proc/sys" in sc.readonly_paths
    sc = _sc({"procMount": "Unmasked"})
    assert (list(sc.masked_paths), list(sc.readonly_paths)) == ([], [])
    sc = _sc({"privileged": True})
    assert (list(sc.masked_paths), list(sc.readonly_paths)) == ([], [])
    with pytest.raises(PodSpecError):
        _sc({"procMount": "Weird"})


def test_every_security_field_reaches_the_config() -> None:
    sc = _sc(
        {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
            "appArmorProfile": {"type": "RuntimeDefault"},
            "runAsGroup": 3000,
        },
        {"runAsUser": 1000, "supplementalGroups": [4000], "fsGroup": 2000, "runAsNonRoot": True},
    )
    assert (sc.run_as_user.value, sc.run_as_group.value) == (1000, 3000)
    assert list(sc.supplemental_groups) == [2000, 4000]
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sc.capabilities.drop_capabilities) == ["ALL"]
    assert sc.seccomp.profile_type == api.SecurityProfile.RuntimeDefault
    assert sc.apparmor.profile_type == api.SecurityProfile.RuntimeDefault


def test_run_as_user_zero_with_run_as_non_root_uses_upstream_words() -> None:
    with pytest.raises(PodSpecError, match="container's runAsUser breaks non-root policy"):
        _sc({"runAsUser": 0}, {"runAsNonRoot": True})
