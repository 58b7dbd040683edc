"""Pod model converters: defaults, sidecars, image pull policy, quantities, errors naming fields."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from kube.quantity import parse_quantity
from kubelet.pods.decode import PodSpecView, default_pull_policy, pod_from_api
from kubelet.pods.model import (
    ContainerState,
    DNSOption,
    EnvFromSource,
    FieldRef,
    HostAlias,
    KeyRef,
    PodDNSConfig,
    PodSpecError,
    PullPolicy,
    ResourceFieldRef,
    RestartPolicy,
    RuntimeContainer,
    RuntimePod,
    RuntimeSandbox,
    SandboxID,
    SandboxState,
    SecurityContext,
    Sysctl,
    VolumeMount,
)
from tests.unit.kubelet.pods.fixtures import UID, ctr, exited


def api_pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "labels": {"app": "w"}},
        "spec": {"containers": [{"name": "a", "image": "nginx:1.25"}], **spec},
    }


def test_minimal_pod_defaults() -> None:
    p = PodSpecView.from_api(api_pod())
    assert (p.uid, p.namespace, p.name, p.ref) == ("u-1", "prod", "web", "prod/web")
    assert p.restart_policy is RestartPolicy.ALWAYS
    assert p.termination_grace_period_seconds == 30
    assert p.active_deadline_seconds is None and not p.is_deleted
    assert p.labels == {"app": "w"} and p.annotations == {}
    c = p.containers[0]
    assert c.image_pull_policy is PullPolicy.IF_NOT_PRESENT
    assert c.termination_message_path == "/dev/termination-log"
    assert c.termination_message_policy == "File"
    assert c.hash and not c.is_sidecar


def test_full_container_fields() -> None:
    raw = api_pod(
        restartPolicy="OnFailure",
        terminationGracePeriodSeconds=5,
        activeDeadlineSeconds=100,
        hostNetwork=True,
        nodeName="n1",
        readinessGates=[{"conditionType": "x/ready"}],
        initContainers=[
            {"name": "side", "image": "envoy", "restartPolicy": "Always"},
            {"name": "setup", "image": "busybox"},
        ],
    )
    raw["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=3)
    raw["spec"]["containers"][0].update(
        command=["/bin/sh"],
        args=["-c", "x"],
        env=[{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {}}}],
        workingDir="/w",
        ports=[{"containerPort": 80, "hostPort": 8080}],
        resources={"limits": {"cpu": "1", "memory": "1Gi"}},
        readinessProbe={"httpGet": {"port": 80}},
    )
    p = pod_from_api(raw)
    assert p.restart_policy is RestartPolicy.ON_FAILURE
    assert p.termination_grace_period_seconds == 5 and p.active_deadline_seconds == 100
    assert p.host_network and p.node_name == "n1" and p.readiness_gates == ("x/ready",)
    assert p.is_deleted and p.grace_period_seconds() == 3
    assert [c.name for c in p.sidecars] == ["side"]
    assert p.init_containers[0].image_pull_policy is PullPolicy.ALWAYS
    c = p.containers[0]
    assert c.command == ("/bin/sh",) and c.args == ("-c", "x") and c.working_dir == "/w"
    assert c.env[0].value == "1" and c.env[1].value_from == {"fieldRef": {}}
    assert c.ports[0].container_port == 80 and c.ports[0].host_port == 8080
    assert c.ports[0].protocol == "TCP"
    assert c.resources == {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert c.readiness_probe == {"httpGet": {"port": 80}} and c.liveness_probe is None
    assert p.container("setup") is p.init_containers[1] and p.container("zz") is None


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", PullPolicy.ALWAYS),
        ("nginx:latest", PullPolicy.ALWAYS),
        ("nginx:1.25", PullPolicy.IF_NOT_PRESENT),
        ("localhost:5000/nginx", PullPolicy.ALWAYS),
        ("localhost:5000/nginx:v1", PullPolicy.IF_NOT_PRESENT),
        ("nginx@sha256:abc", PullPolicy.IF_NOT_PRESENT),
        ("registry.k8s.io/pause:3.9", PullPolicy.IF_NOT_PRESENT),
    ],
)
def test_default_pull_policy(image: str, policy: PullPolicy) -> None:
    assert default_pull_policy(image) is policy


def test_explicit_pull_policy_wins() -> None:
    raw = api_pod()
    raw["spec"]["containers"][0].update(image="nginx", imagePullPolicy="Never")
    assert pod_from_api(raw).containers[0].image_pull_policy is PullPolicy.NEVER


def test_hash_changes_with_image_not_resources() -> None:
    assert ctr("a").hash == ctr("a").hash
    assert ctr("a").hash != ctr("a", image_pull_policy=PullPolicy.ALWAYS, args=("x",)).hash
    assert ctr("a").hash == ctr("a", resources={"limits": {"cpu": "1"}}).hash


def _bad(mutate: Any) -> PodSpecError:
    raw = api_pod()
    mutate(raw)
    with pytest.raises(PodSpecError) as e:
        pod_from_api(raw)
    return e.value


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["metadata"].pop("uid"), "metadata.uid"),
        (lambda r: r["spec"].update(containers=[]), "spec.containers"),
        (lambda r: r["spec"].update(containers="x"), "spec.containers"),
        (lambda r: r["spec"]["containers"][0].pop("image"), "spec.containers[0].image"),
        (lambda r: r["spec"]["containers"][0].update(name=""), "spec.containers[0].name"),
        (lambda r: r["spec"].update(restartPolicy="Sometimes"), "spec.restartPolicy"),
        (
            lambda r: r["spec"]["containers"][0].update(resources={"limits": {"cpu": "lots"}}),
            "spec.containers[0].resources.limits.cpu",
        ),
        (
            lambda r: r["spec"]["containers"][0].update(ports=[{"name": "http"}]),
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            lambda r: r["spec"]["containers"][0].update(restartPolicy="Always"),
            "spec.containers[0].restartPolicy",
        ),
        (
            lambda r: r["spec"].update(terminationGracePeriodSeconds="30"),
            "spec.terminationGracePeriodSeconds",
        ),
        (lambda r: r["spec"]["containers"].append({"name": "a", "image": "x"}), "spec.containers"),
        (lambda r: r["metadata"].update(labels={"a": 1}), "metadata.labels"),
    ],
)
def test_malformed_pod_names_pod_and_field(mutate: Any, field: str) -> None:
    err = _bad(mutate)
    assert err.field == field
    assert err.pod == "prod/web"
    assert str(err).startswith(f"pod prod/web: {field}: ")


def test_not_a_dict() -> None:
    with pytest.raises(PodSpecError):
        pod_from_api([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Fraction(1, 10)),
        ("1", Fraction(1)),
        ("1.5", Fraction(3, 2)),
        ("1Gi", Fraction(2**30)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1k", Fraction(1000)),
        ("1e3", Fraction(1000)),
        ("1E", Fraction(10**18)),
        (2, Fraction(2)),
    ],
)
def test_parse_quantity(text: object, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1x", "abc", True, None, "1 Gi"])
def test_parse_quantity_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_runtime_pod_views() -> None:
    old = RuntimeSandbox(SandboxID("s0"), SandboxState.NOTREADY, created_at=1.0)
    new = RuntimeSandbox(SandboxID("s1"), SandboxState.READY, created_at=2.0, attempt=1)
    c0 = exited("a", 1, restart=0, sandbox_id=SandboxID("s0"))
    c1 = RuntimeContainer(
        id=c0.id.__class__("a-1"),
        name="a",
        state=ContainerState.RUNNING,
        restart_count=1,
        sandbox_id=SandboxID("s1"),
    )
    r = RuntimePod(uid=UID, sandboxes=(old, new), containers=(c0, c1))
    assert r.latest_sandbox() == new
    assert r.latest("a") == c1 and r.history("a") == [c1, c0]
    assert r.in_sandbox(SandboxID("s1")).containers == (c1,)
    assert r.alive() == [c1]
    assert RuntimePod(uid=UID).latest_sandbox() is None


def test_dns_and_hostname_fields() -> None:
    p = pod_from_api(api_pod())
    assert (p.dns_policy, p.dns_config, p.hostname, p.subdomain) == ("ClusterFirst", None, "", "")
    assert not p.set_hostname_as_fqdn and p.hostname_override is None
    cfg = {
        "nameservers": ["1.1.1.1"],
        "searches": ["a.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    q = pod_from_api(
        api_pod(
            dnsPolicy="None",
            dnsConfig=cfg,
            hostname="box",
            subdomain="grp",
            setHostnameAsFQDN=True,
            hostnameOverride="node.example",
        )
    )
    assert q.dns_policy == "None" and q.dns_config == PodDNSConfig(
        ("1.1.1.1",), ("a.example",), (DNSOption("ndots", "2"), DNSOption("edns0"))
    )
    assert (q.hostname, q.subdomain, q.set_hostname_as_fqdn) == ("box", "grp", True)
    assert q.hostname_override == "node.example"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"dnsConfig": []}, "spec.dnsConfig"),
        ({"dnsConfig": {"nameservers": [1]}}, "spec.dnsConfig.nameservers"),
        (
            {"dnsConfig": {"options": [{"name": "x", "value": 1}]}},
            "spec.dnsConfig.options[0].value",
        ),
        ({"hostname": 5}, "spec.hostname"),
    ],
)
def test_bad_dns_fields_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(PodSpecError) as e:
        pod_from_api(api_pod(**spec))
    assert e.value.field == field


def test_node_admission_fields() -> None:
    p = pod_from_api(api_pod())
    assert (p.os_name, p.host_ipc, p.sysctls) == ("", False, ())
    assert p.security_context == SecurityContext() == p.containers[0].security_context
    q = pod_from_api(
        api_pod(
            os={"name": "linux"},
            hostIPC=True,
            securityContext={
                "runAsUser": 1000,
                "runAsNonRoot": True,
                "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}],
            },
            containers=[{"name": "a", "image": "nginx:1.25", "securityContext": {"runAsGroup": 5}}],
        )
    )
    assert (q.os_name, q.host_ipc) == ("linux", True)
    assert q.sysctls == (Sysctl("kernel.shm_rmid_forced", "1"),)
    assert q.security_context == SecurityContext(1000, None, True)
    own = q.containers[0].security_context
    assert own == SecurityContext(run_as_group=5)
    assert own.over(q.security_context) == SecurityContext(1000, 5, True)
    assert SecurityContext(run_as_user=0).over(q.security_context).run_as_user == 0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"securityContext": {"runAsNonRoot": "yes"}}, "spec.securityContext.runAsNonRoot"),
        ({"securityContext": {"runAsUser": "0"}}, "spec.securityContext.runAsUser"),
        (
            {"securityContext": {"sysctls": [{"value": "1"}]}},
            "spec.securityContext.sysctls[0].name",
        ),
        ({"os": {"name": 1}}, "spec.os.name"),
    ],
)
def test_bad_security_fields_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(PodSpecError) as e:
        pod_from_api(api_pod(**spec))
    assert e.value.field == field


def test_env_sources_are_decoded_and_the_spec_hash_is_unchanged() -> None:
    field = {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}
    container: dict[str, Any] = {
        "name": "a",
        "image": "nginx:1.25",
        "env": [
            {"name": "X", "valueFrom": field},
            {"name": "Y", "value": "y"},
            {"name": "R", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "P_"},
            {"secretRef": {"name": "sec", "optional": True}},
        ],
        "securityContext": {"runAsUser": 1},
    }
    p = pod_from_api(api_pod(containers=[container], serviceAccountName="sa"))
    c = p.containers[0]
    assert [e.source for e in c.env] == [
        FieldRef("metadata.name"),
        None,
        ResourceFieldRef("limits.cpu"),
        KeyRef("secrets", "s", "k"),
    ]
    assert c.env_from == (
        EnvFromSource("configmaps", "cfg", "P_"),
        EnvFromSource("secrets", "sec", optional=True),
    )
    assert (p.service_account_name, p.enable_service_links) == ("sa", True)
    # the hash earlier versions recorded on running containers must not change
    two = {**container, "env": container["env"][:2], "envFrom": [{"configMapRef": {"name": "cfg"}}]}
    assert pod_from_api(api_pod(containers=[two])).containers[0].hash == "c309520fce454108"


def test_status_pod_ips() -> None:
    both = {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
    assert pod_from_api({**api_pod(), "status": both}).status_pod_ips == ("10.0.0.5", "fd00::5")
    only = {"podIP": "10.0.0.6"}
    assert pod_from_api({**api_pod(), "status": only}).status_pod_ips == ("10.0.0.6",)
    assert pod_from_api(api_pod()).status_pod_ips == ()


def test_volume_mounts_host_aliases_and_pull_secrets() -> None:
    mounts = [{"name": "v", "mountPath": "/data", "readOnly": True, "subPath": "x"}]
    p = pod_from_api(
        api_pod(
            containers=[{"name": "a", "image": "nginx:1.25", "volumeMounts": mounts}],
            hostAliases=[{"ip": "10.0.0.1", "hostnames": ["a", "b"]}],
            imagePullSecrets=[{"name": "reg"}, {}],
        )
    )
    assert p.containers[0].volume_mounts == (VolumeMount("v", "/data", True, "x"),)
    assert p.host_aliases == (HostAlias("10.0.0.1", ("a", "b")),)
    assert p.image_pull_secrets == ("reg",)
    assert p.runtime_class_name == ""
    assert pod_from_api(api_pod(runtimeClassName="kata")).runtime_class_name == "kata"


def test_lifecycle_handlers_are_kept_as_written() -> None:
    hook = {"exec": {"command": ["sh", "-c", "true"]}}
    c = {"name": "a", "image": "nginx:1.25", "lifecycle": {"postStart": hook, "preStop": {}}}
    decoded = pod_from_api(api_pod(containers=[c])).containers[0]
    assert (decoded.post_start, decoded.pre_stop) == (hook, None)
    with pytest.raises(PodSpecError, match=r"spec\.containers\[0\]\.lifecycle\.preStop"):
        pod_from_api(api_pod(containers=[{**c, "lifecycle": {"preStop": "x"}}]))


def test_volumes_are_kept_as_written_with_a_name() -> None:
    vols = [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]
    assert pod_from_api(api_pod(volumes=vols)).volumes == tuple(vols)
    with pytest.raises(PodSpecError, match=r"spec\.volumes\[0\]\.name"):
        pod_from_api(api_pod(volumes=[{"emptyDir": {}}]))
