"""sandbox_config: metadata, hostname, DNS, port mappings, namespaces, pod security context."""

from __future__ import annotations

from typing import Any

import pytest

from cri import api
from kubelet.pods.model import PodSpecError
from kubelet.runtime import labels as L
from kubelet.runtime.criconfig import (
    DNSSettings,
    namespace_options,
    pod_hostname,
    pod_log_directory,
    sandbox_config,
)
from tests.unit.kubelet.runtime.helpers import BASE_POD, make_pod

UID = BASE_POD["metadata"]["uid"]


def _config(pod: dict[str, Any], **kw: Any) -> api.PodSandboxConfig:
    return sandbox_config(pod, attempt=kw.pop("attempt", 0), log_dir="/logs", dns=None, **kw)


def test_metadata_logs_labels_and_cgroup() -> None:
    cfg = sandbox_config(
        BASE_POD,
        attempt=2,
        log_dir=pod_log_directory(BASE_POD),
        dns=None,
        cgroup_parent="/kubepods/burstable/podX",
    )
    assert cfg.metadata == api.PodSandboxMetadata(
        name="web", namespace="default", uid=UID, attempt=2
    )
    assert cfg.log_directory == f"/var/log/pods/default_web_{UID}"
    assert dict(cfg.labels) == L.sandbox_labels(BASE_POD)
    assert dict(cfg.annotations) == {"note": "hello"}
    assert cfg.linux.cgroup_parent == "/kubepods/burstable/podX"
    assert not cfg.HasField("dns_config")


def test_dns_is_passed_through() -> None:
    dns = DNSSettings(
        nameservers=("10.96.0.10",),
        searches=("default.svc.cluster.local", "svc.cluster.local"),
        options=("ndots:5",),
    )
    cfg = sandbox_config(BASE_POD, attempt=0, log_dir="/l", dns=dns)
    assert cfg.dns_config == api.DNSConfig(
        servers=["10.96.0.10"],
        searches=["default.svc.cluster.local", "svc.cluster.local"],
        options=["ndots:5"],
    )


HOSTNAMES: list[tuple[str, dict[str, Any], str]] = [
    ("pod name", {}, "web"),
    ("spec.hostname", {"hostname": "db-0"}, "db-0"),
    ("host network", {"hostNetwork": True, "hostname": "x"}, ""),
    ("truncated", {"hostname": "a" * 70}, "a" * 63),
    ("trailing dash trimmed", {"hostname": "b" * 61 + "-.cc"}, "b" * 61),
]


@pytest.mark.parametrize(
    ("spec", "want"), [h[1:] for h in HOSTNAMES], ids=[h[0] for h in HOSTNAMES]
)
def test_hostname(spec: dict[str, Any], want: str) -> None:
    assert pod_hostname(make_pod(spec)) == want
    assert _config(make_pod(spec)).hostname == want


NS = api.NamespaceOption
NAMESPACES: list[tuple[dict[str, Any], tuple[int, int, int]]] = [
    # (spec, (network, pid, ipc))
    ({}, (api.POD, api.CONTAINER, api.POD)),
    ({"hostNetwork": True}, (api.NODE, api.CONTAINER, api.POD)),
    ({"hostPID": True}, (api.POD, api.NODE, api.POD)),
    ({"shareProcessNamespace": True}, (api.POD, api.POD, api.POD)),
    ({"hostPID": True, "shareProcessNamespace": True}, (api.POD, api.NODE, api.POD)),
    ({"hostIPC": True}, (api.POD, api.CONTAINER, api.NODE)),
    ({"hostNetwork": True, "hostPID": True, "hostIPC": True}, (api.NODE, api.NODE, api.NODE)),
    ({"hostNetwork": False, "hostPID": False, "hostIPC": False}, (api.POD, api.CONTAINER, api.POD)),
    ({"hostUsers": True}, (api.POD, api.CONTAINER, api.POD)),
]


@pytest.mark.parametrize(("spec", "want"), NAMESPACES)
def test_namespace_options_matrix(spec: dict[str, Any], want: tuple[int, int, int]) -> None:
    ns = _config(make_pod(spec)).linux.security_context.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == want
    assert ns.userns_options.mode == api.NODE
    assert ns == namespace_options(make_pod(spec))


def test_user_namespaces_are_refused() -> None:
    with pytest.raises(PodSpecError, match=r"^pod default/web: spec.hostUsers: "):
        _config(make_pod({"hostUsers": False}))


def test_port_mappings_only_host_ports_of_regular_containers() -> None:
    pod = make_pod()
    pod["spec"]["containers"].append(
        {
            "name": "side",
            "image": "busybox",
            "ports": [
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "10.0.0.1"},
                {"containerPort": 8080, "hostPort": 8080},
                {"containerPort": 9000, "hostPort": 9000, "protocol": "SCTP"},
                {"containerPort": 9090, "hostPort": 0},
            ],
        }
    )
    pod["spec"]["initContainers"] = [
        {"name": "init", "image": "x", "ports": [{"containerPort": 1, "hostPort": 1}]}
    ]
    assert list(_config(pod).port_mappings) == [
        api.PortMapping(protocol=api.UDP, container_port=53, host_port=5353, host_ip="10.0.0.1"),
        api.PortMapping(protocol=api.TCP, container_port=8080, host_port=8080),
        api.PortMapping(protocol=api.SCTP, container_port=9000, host_port=9000),
    ]


BAD_PORTS: list[tuple[dict[str, Any], str]] = [
    ({"containerPort": 80, "hostPort": 8080, "protocol": "ICMP"}, "ports[0].protocol"),
    ({"containerPort": 80, "hostPort": "8080"}, "ports[0].hostPort"),
    ({"containerPort": 80, "hostPort": 70000}, "ports[0].hostPort"),
    ({"hostPort": 8080}, "ports[0].containerPort"),
]


@pytest.mark.parametrize(("port", "field"), BAD_PORTS)
def test_bad_port_names_pod_container_and_field(port: dict[str, Any], field: str) -> None:
    with pytest.raises(PodSpecError) as e:
        _config(make_pod(container={"ports": [port]}))
    assert str(e.value).startswith(f'pod default/web: container "app": {field}: ')


def test_pod_security_context() -> None:
    pod = make_pod(
        {
            "securityContext": {
                "runAsUser": 1000,
                "runAsGroup": 3000,
                "fsGroup": 2000,
                "supplementalGroups": [4000, 5000],
                "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
                "seLinuxOptions": {"level": "s0:c1,c2"},
            }
        }
    )
    linux = _config(pod).linux
    sc = linux.security_context
    assert sc.run_as_user.value == 1000 and sc.HasField("run_as_user")
    assert sc.run_as_group.value == 3000
    assert list(sc.supplemental_groups) == [2000, 4000, 5000]
    assert dict(linux.sysctls) == {"net.core.somaxconn": "1024"}
    assert sc.selinux_options == api.SELinuxOption(level="s0:c1,c2")
    assert not sc.privileged


def test_unset_pod_security_context_leaves_ids_unset() -> None:
    sc = _config(BASE_POD).linux.security_context
    assert not sc.HasField("run_as_user") and not sc.HasField("run_as_group")
    assert not sc.HasField("selinux_options")
    assert list(sc.supplemental_groups) == []


@pytest.mark.parametrize("where", ["containers", "initContainers", "ephemeralContainers"])
def test_sandbox_is_privileged_if_any_container_is(where: str) -> None:
    pod = make_pod()
    priv = {"name": "p", "image": "x", "securityContext": {"privileged": True}}
    pod["spec"].setdefault(where, []).append(priv)
    assert _config(pod).linux.security_context.privileged


SECCOMP: list[tuple[dict[str, Any] | None, api.SecurityProfile]] = [
    (None, api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault)),
    (
        {"type": "RuntimeDefault"},
        api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault),
    ),
    ({"type": "Unconfined"}, api.SecurityProfile(profile_type=api.SecurityProfile.Unconfined)),
    (
        {"type": "Localhost", "localhostProfile": "profiles/audit.json"},
        api.SecurityProfile(
            profile_type=api.SecurityProfile.Localhost,
            localhost_ref="/var/lib/kubelet/seccomp/profiles/audit.json",
        ),
    ),
]


@pytest.mark.parametrize(("profile", "want"), SECCOMP)
def test_sandbox_seccomp(profile: dict[str, Any] | None, want: api.SecurityProfile) -> None:
    spec = {"securityContext": {"seccompProfile": profile}} if profile else {}
    sc = _config(make_pod(spec)).linux.security_context
    assert sc.HasField("seccomp") and sc.seccomp == want


POD_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"securityContext": {"runAsUser": -1}}, "spec.securityContext.runAsUser"),
    ({"securityContext": {"runAsGroup": "1"}}, "spec.securityContext.runAsGroup"),
    ({"securityContext": {"fsGroup": True}}, "spec.securityContext.fsGroup"),
    ({"securityContext": {"supplementalGroups": ["a"]}}, "spec.securityContext.supplementalGroups"),
    ({"securityContext": {"sysctls": [{"value": "1"}]}}, "spec.securityContext.sysctls[0].name"),
    (
        {"securityContext": {"seccompProfile": {"type": "Bogus"}}},
        "spec.securityContext.seccompProfile.type",
    ),
    (
        {"securityContext": {"seccompProfile": {"type": "Localhost"}}},
        "spec.securityContext.seccompProfile.localhostProfile",
    ),
    ({"hostname": "-" * 70}, "spec.hostname"),
]


@pytest.mark.parametrize(("spec", "field"), POD_ERRORS)
def test_pod_level_errors_name_pod_and_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(PodSpecError) as e:
        _config(make_pod(spec))
    assert str(e.value).startswith(f"pod default/web: {field}: ")
    assert e.value.container is None and e.value.field == field


@pytest.mark.parametrize("key", ["name", "uid"])
def test_missing_identity_is_refused(key: str) -> None:
    pod = make_pod()
    del pod["metadata"][key]
    with pytest.raises(PodSpecError, match=f"metadata.{key}: required"):
        _config(pod)
