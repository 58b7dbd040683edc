"""container_config: spec fields, env, log path, resources and the merged security context."""

from __future__ import annotations

from typing import Any

import pytest

from cri import api
from kubelet.pods.model import PodSpecError
from kubelet.runtime import labels as L
from kubelet.runtime.criconfig import (
    DNSSettings,
    container_config,
    container_resources,
    container_security_context,
    sandbox_config,
)
from tests.unit.kubelet.runtime.helpers import first, make_pod


def _config(pod: dict[str, Any], **kw: Any) -> api.ContainerConfig:
    return container_config(pod, first(pod), attempt=kw.pop("attempt", 0), restart_count=0, **kw)


def test_spec_fields_are_copied() -> None:
    pod = make_pod(
        container={
            "command": ["/bin/sh", "-c"],
            "args": ["echo $(A)"],
            "workingDir": "/srv",
            "stdin": True,
            "stdinOnce": True,
            "tty": True,
            "env": [
                {"name": "A", "value": "1"},
                {"name": "EMPTY"},
                {"name": "REF", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        }
    )
    cfg = container_config(pod, first(pod), attempt=4, restart_count=3)
    assert cfg.metadata == api.ContainerMetadata(name="app", attempt=4)
    assert cfg.image == api.ImageSpec(image="nginx:1.27", user_specified_image="nginx:1.27")
    assert list(cfg.command) == ["/bin/sh", "-c"]
    assert list(cfg.args) == ["echo $(A)"]  # not expanded here
    assert cfg.working_dir == "/srv"
    assert [(e.key, e.value) for e in cfg.envs] == [("A", b"1"), ("EMPTY", b"")]
    assert cfg.log_path == "app/3.log"
    assert (cfg.stdin, cfg.stdin_once, cfg.tty) == (True, True, True)
    assert dict(cfg.labels) == L.container_labels(pod, first(pod))
    assert cfg.annotations[L.CONTAINER_RESTART_COUNT] == "3"
    assert cfg.annotations[L.CONTAINER_HASH] == L.container_hash(first(pod))


def test_given_env_mounts_image_ref_and_hash_win() -> None:
    mount = api.Mount(container_path="/data", host_path="/var/lib/x", readonly=True)
    cfg = _config(
        make_pod(container={"env": [{"name": "A", "value": "spec"}]}),
        env=[("A", "resolved"), ("B", "é")],
        mounts=[mount],
        image_ref="sha256:abc",
        spec_hash="deadbeef",
    )
    assert [(e.key, e.value) for e in cfg.envs] == [("A", b"resolved"), ("B", "é".encode())]
    assert list(cfg.mounts) == [mount]
    assert cfg.image == api.ImageSpec(image="sha256:abc", user_specified_image="nginx:1.27")
    assert cfg.annotations[L.CONTAINER_HASH] == "deadbeef"


def test_empty_env_list_means_no_env() -> None:
    cfg = _config(make_pod(container={"env": [{"name": "A", "value": "1"}]}), env=[])
    assert list(cfg.envs) == []


def _res(resources: dict[str, Any]) -> api.LinuxContainerResources:
    pod = make_pod(container={"resources": resources})
    return container_resources(pod, first(pod))


RESOURCES: list[tuple[str, dict[str, Any], api.LinuxContainerResources]] = [
    ("none", {}, api.LinuxContainerResources(cpu_shares=2)),
    ("request", {"requests": {"cpu": "250m"}}, api.LinuxContainerResources(cpu_shares=256)),
    (
        "limit defaults request",
        {"limits": {"cpu": "500m"}},
        api.LinuxContainerResources(cpu_shares=512, cpu_period=100000, cpu_quota=50000),
    ),
    (
        "request and limit",
        {"requests": {"cpu": "100m"}, "limits": {"cpu": "2"}},
        api.LinuxContainerResources(cpu_shares=102, cpu_period=100000, cpu_quota=200000),
    ),
    (
        "tiny limit",
        {"limits": {"cpu": "1m"}},
        api.LinuxContainerResources(cpu_shares=2, cpu_period=100000, cpu_quota=1000),
    ),
    (
        "memory",
        {"requests": {"memory": "1Gi"}, "limits": {"memory": "123Mi"}},
        api.LinuxContainerResources(cpu_shares=2, memory_limit_in_bytes=123 * 2**20),
    ),
    (
        "zero cpu limit",
        {"limits": {"cpu": "0"}},
        api.LinuxContainerResources(cpu_shares=2),
    ),
    (
        "numbers",
        {"requests": {"cpu": 1}, "limits": {"memory": 1000}},
        api.LinuxContainerResources(cpu_shares=1024, memory_limit_in_bytes=1000),
    ),
]


@pytest.mark.parametrize(
    ("resources", "want"), [r[1:] for r in RESOURCES], ids=[r[0] for r in RESOURCES]
)
def test_resources(resources: dict[str, Any], want: api.LinuxContainerResources) -> None:
    assert _res(resources) == want
    assert _config(make_pod(container={"resources": resources})).linux.resources == want


BAD_RESOURCES: list[tuple[dict[str, Any], str]] = [
    ({"limits": {"memory": "12XB"}}, 'resources.limits.memory: invalid quantity "12XB"'),
    ({"limits": {"cpu": "two"}}, 'resources.limits.cpu: invalid quantity "two"'),
    ({"requests": {"cpu": "-1"}}, 'resources.requests.cpu: negative quantity "-1"'),
    ({"requests": {"memory": "1ZZ"}}, 'resources.requests.memory: invalid quantity "1ZZ"'),
    ({"limits": {"memory": "9Ei"}}, "resources.limits.memory: quantity out of range '9Ei'"),
]


@pytest.mark.parametrize(("resources", "tail"), BAD_RESOURCES)
def test_bad_quantity_message(resources: dict[str, Any], tail: str) -> None:
    with pytest.raises(PodSpecError) as e:
        _config(make_pod(container={"resources": resources}))
    assert str(e.value) == f'pod default/web: container "app": {tail}'
    assert e.value.container == "app" and e.value.pod == "default/web"


def _sc(pod_sc: dict[str, Any], c_sc: dict[str, Any]) -> api.LinuxContainerSecurityContext:
    pod = make_pod({"securityContext": pod_sc}, {"securityContext": c_sc})
    return container_security_context(pod, first(pod))


def test_pod_defaults_are_inherited() -> None:
    sc = _sc(
        {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [7]}, {}
    )
    assert sc.run_as_user.value == 1000 and sc.run_as_group.value == 3000
    assert list(sc.supplemental_groups) == [2000, 7]
    assert not sc.privileged and not sc.readonly_rootfs and not sc.no_new_privs


def test_container_values_win() -> None:
    sc = _sc(
        {"runAsUser": 1000, "runAsGroup": 3000, "seccompProfile": {"type": "RuntimeDefault"}},
        {"runAsUser": 0, "runAsGroup": 0, "seccompProfile": {"type": "Unconfined"}},
    )
    assert sc.HasField("run_as_user") and sc.run_as_user.value == 0
    assert sc.run_as_group.value == 0
    assert sc.seccomp.profile_type == api.SecurityProfile.Unconfined


def test_unset_ids_stay_unset_and_seccomp_defaults_to_unconfined() -> None:
    sc = _sc({}, {})
    assert not sc.HasField("run_as_user") and not sc.HasField("run_as_group")
    assert not sc.HasField("capabilities")
    assert sc.HasField("seccomp") and sc.seccomp.profile_type == api.SecurityProfile.Unconfined


def test_pod_seccomp_is_inherited() -> None:
    sc = _sc({"seccompProfile": {"type": "RuntimeDefault"}}, {})
    assert sc.HasField("seccomp") and sc.seccomp.profile_type == api.SecurityProfile.RuntimeDefault


def test_capabilities_and_readonly_rootfs() -> None:
    sc = _sc(
        {},
        {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "readOnlyRootFilesystem": True},
    )
    assert sc.capabilities == api.Capability(
        add_capabilities=["NET_ADMIN"], drop_capabilities=["ALL"]
    )
    assert sc.readonly_rootfs


NO_NEW_PRIVS: list[tuple[dict[str, Any], bool]] = [
    ({}, False),
    ({"allowPrivilegeEscalation": True}, False),
    ({"allowPrivilegeEscalation": False}, True),
    ({"allowPrivilegeEscalation": False, "privileged": True}, False),
    ({"privileged": True}, False),
]


@pytest.mark.parametrize(("c_sc", "want"), NO_NEW_PRIVS)
def test_no_new_privs(c_sc: dict[str, Any], want: bool) -> None:
    assert _sc({}, c_sc).no_new_privs is want


def test_privileged_and_namespaces_match_the_sandbox() -> None:
    pod = make_pod({"hostNetwork": True, "shareProcessNamespace": True})
    first(pod)["securityContext"] = {"privileged": True}
    sc = _config(pod).linux.security_context
    assert sc.privileged
    ns = sc.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == (api.NODE, api.POD, api.POD)


SC_ERRORS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"runAsNonRoot": True}, {"runAsUser": 0}, "securityContext.runAsUser"),
    ({"runAsNonRoot": True, "runAsUser": 0}, {}, "securityContext.runAsUser"),
    ({}, {"runAsUser": "root"}, "securityContext.runAsUser"),
    ({}, {"capabilities": {"add": "NET_ADMIN"}}, "securityContext.capabilities.add"),
    ({}, {"seccompProfile": {"type": "Nope"}}, "securityContext.seccompProfile.type"),
]


@pytest.mark.parametrize(("pod_sc", "c_sc", "field"), SC_ERRORS)
def test_security_context_errors(pod_sc: dict[str, Any], c_sc: dict[str, Any], field: str) -> None:
    with pytest.raises(PodSpecError) as e:
        _sc(pod_sc, c_sc)
    assert str(e.value).startswith(f'pod default/web: container "app": {field}: ')


def test_run_as_non_root_with_non_zero_user_is_fine() -> None:
    assert _sc({"runAsNonRoot": True}, {"runAsUser": 1}).run_as_user.value == 1


SPEC_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"image": ""}, "image: required"),
    ({"command": "/bin/sh"}, "command: must be a list of strings"),
    ({"args": [1]}, "args: must be a list of strings"),
    ({"env": [{"value": "x"}]}, "env[0].name: required"),
]


@pytest.mark.parametrize(("change", "tail"), SPEC_ERRORS)
def test_spec_errors(change: dict[str, Any], tail: str) -> None:
    with pytest.raises(PodSpecError) as e:
        _config(make_pod(container=change))
    assert str(e.value).startswith(f'pod default/web: container "app": {tail}')


def test_namespace_defaults_in_error_ref() -> None:
    pod = make_pod(container={"image": ""})
    del pod["metadata"]["namespace"]
    with pytest.raises(PodSpecError, match=r'^pod default/web: container "app": image'):
        _config(pod)


def test_full_configs_survive_the_wire() -> None:
    pod = make_pod(
        {
            "hostPID": True,
            "securityContext": {"runAsUser": 5, "sysctls": [{"name": "a", "value": "1"}]},
        },
        {
            "ports": [{"containerPort": 80, "hostPort": 8080}],
            "securityContext": {"privileged": True},
        },
    )
    sandbox = sandbox_config(
        pod, attempt=1, log_dir="/l", dns=DNSSettings(nameservers=("1.1.1.1",))
    )
    container = _config(pod, env=[("K", "V")])
    request = api.CreateContainerRequest(
        pod_sandbox_id="s", config=container, sandbox_config=sandbox
    )
    assert api.CreateContainerRequest.FromString(request.SerializeToString()) == request
