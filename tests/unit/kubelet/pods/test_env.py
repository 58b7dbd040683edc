"""Environment resolution: $(VAR) expansion rules, service variables, downward API, envFrom and
configMap/secret references, against in-memory fakes (no apiserver, no runtime)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from kube.apiserver import NotFound, Resource
from kubelet import events as ev
from kubelet.pods.decode import pod_from_api
from kubelet.pods.env import (
    INVALID_ENV_NAMES,
    EnvironmentManager,
    ObjectCache,
    env_from_items,
    expand,
    field_ref_value,
    format_map,
    mapping_for,
    resource_value,
)
from kubelet.pods.model import Container, Pod, ResourceFieldRef
from kubelet.pods.seams import ContainerConfigError, ResolvedContainer
from kubelet.services import select_services, service_env

Json = dict[str, Any]

CTX = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("foo\\$(VAR_C)bar", "foo\\Cbar"),
        ("$$(VAR_B)", "$(VAR_B)"),
        ("$$$(VAR_C)", "$C"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$(VAR_REF)", "$(VAR_A)"),
        ("$(VAR_EMPTY)", ""),
        ("$(VAR_A", "$(VAR_A"),
        ("$(", "$("),
        ("$", "$"),
        ("foo$", "foo$"),
        ("$x$(VAR_A)", "$xA"),
        ("$()", "$()"),
        ("$(VAR_A)$$(VAR_B)$(VAR_C", "A$(VAR_B)$(VAR_C"),
        ("$($(VAR_A))", "$($(VAR_A))"),
        ("é$(VAR_A)é", "éAé"),
    ],
)
def test_expansion_rules(text: str, want: str) -> None:
    assert expand(text, mapping_for(CTX)) == want


def test_mapping_prefers_earlier_context() -> None:
    lookup = mapping_for({"X": "1"}, {"X": "2", "Y": "3"})
    assert expand("$(X)$(Y)", lookup) == "13"


def svc(
    name: str, ns: str, ip: str = "10.0.0.9", ports: list[Json] | None = None, **spec: Any
) -> Json:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": ports or [{"port": 80}], **spec},
    }


def test_service_env_names() -> None:
    s = svc(
        "my-web",
        "ns",
        "10.0.0.7",
        [{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}],
    )
    assert service_env([s]) == [
        ("MY_WEB_SERVICE_HOST", "10.0.0.7"),
        ("MY_WEB_SERVICE_PORT", "80"),
        ("MY_WEB_SERVICE_PORT_HTTP", "80"),
        ("MY_WEB_SERVICE_PORT_DNS_UDP", "53"),
        ("MY_WEB_PORT", "tcp://10.0.0.7:80"),
        ("MY_WEB_PORT_80_TCP", "tcp://10.0.0.7:80"),
        ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
        ("MY_WEB_PORT_80_TCP_PORT", "80"),
        ("MY_WEB_PORT_80_TCP_ADDR", "10.0.0.7"),
        ("MY_WEB_PORT_53_UDP", "udp://10.0.0.7:53"),
        ("MY_WEB_PORT_53_UDP_PROTO", "udp"),
        ("MY_WEB_PORT_53_UDP_PORT", "53"),
        ("MY_WEB_PORT_53_UDP_ADDR", "10.0.0.7"),
    ]


def test_service_env_ipv6_brackets_url_only() -> None:
    env = dict(service_env([svc("v6", "ns", "fd00::1")]))
    assert env["V6_PORT"] == "tcp://[fd00::1]:80"
    assert env["V6_PORT_80_TCP_ADDR"] == "fd00::1"


def test_select_services_rules() -> None:
    services = [
        svc("kubernetes", "default", "10.0.0.1", [{"name": "https", "port": 443}]),
        svc("other", "default"),
        svc("web", "ns"),
        svc("headless", "ns", "None"),
        svc("ext", "ns", "", type="ExternalName"),
        svc("web", "elsewhere"),
    ]
    picked = select_services(services, "ns", links=True)
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in picked] == [
        ("default", "kubernetes"),
        ("ns", "web"),
    ]
    no_links = select_services(services, "ns", links=False)
    assert [s["metadata"]["name"] for s in no_links] == ["kubernetes"]
    in_default = select_services(services, "default", links=True)
    assert [s["metadata"]["name"] for s in in_default] == ["kubernetes", "other"]
    shadow = [*services, svc("kubernetes", "ns", "10.0.0.99")]
    picked = select_services(shadow, "ns", links=True)
    assert {s["spec"]["clusterIP"] for s in picked if s["metadata"]["name"] == "kubernetes"} == {
        "10.0.0.99"
    }


POD: Json = {
    "metadata": {
        "name": "web",
        "namespace": "ns",
        "uid": "u-1",
        "labels": {"app": "web", "tier": 'a"b'},
        "annotations": {"note": "x\ny"},
    },
    "spec": {"nodeName": "node-1", "serviceAccountName": "sa", "containers": []},
    "status": {"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}]},
}


def typed(pod: Json, container: Json | None = None) -> tuple[Pod, Container]:
    """The pod decoded with `container` (named c, given an image) first in spec.containers."""
    c = {"name": "c", "image": "img:1", **(container or {})}
    spec = pod.get("spec") or {}
    others = [{"image": "img:1", **o} for o in spec.get("containers") or []]
    meta = pod.get("metadata") or {"name": "p", "namespace": "ns", "uid": "u-x"}
    decoded = pod_from_api({**pod, "metadata": meta, "spec": {**spec, "containers": [c, *others]}})
    return decoded, decoded.containers[0]


def field_ref(ref: Json) -> ResourceFieldRef:
    """A resourceFieldRef as the decoder reads it."""
    _, c = typed({}, {"env": [{"name": "X", "valueFrom": {"resourceFieldRef": ref}}]})
    source = c.env[0].source
    assert isinstance(source, ResourceFieldRef)
    return source


async def resolve(
    m: EnvironmentManager, pod: Json, container: Json, **kw: Any
) -> ResolvedContainer:
    p, c = typed(pod, container)
    return await m.resolve(p, c, **kw)


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("metadata.name", "web"),
        ("metadata.namespace", "ns"),
        ("metadata.uid", "u-1"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['note']", "x\ny"),
        ("metadata.labels", 'app="web"\ntier="a\\"b"'),
        ("metadata.annotations", 'note="x\\ny"'),
        ("spec.nodeName", "node-1"),
        ("spec.serviceAccountName", "sa"),
        ("status.podIP", "10.1.0.5"),
        ("status.podIPs", "10.1.0.5,fd00::5"),
        ("status.hostIP", "192.168.1.2"),
        ("status.hostIPs", "192.168.1.2,fd01::2"),
    ],
)
def test_field_ref(path: str, want: str) -> None:
    got = field_ref_value(
        typed(POD)[0], path, pod_ips=["10.1.0.5", "fd00::5"], host_ips=["192.168.1.2", "fd01::2"]
    )
    assert got == want


@pytest.mark.parametrize(
    "path", ["metadata.generateName", "spec.restartPolicy", "metadata.name['x']", "status.phase"]
)
def test_field_ref_unsupported(path: str) -> None:
    with pytest.raises(ContainerConfigError):
        field_ref_value(typed(POD)[0], path, pod_ips=[], host_ips=["1.2.3.4"])


def test_format_map_quotes_like_go() -> None:
    assert format_map({"b": "tab\there", "a": "\x01"}) == 'a="\\x01"\nb="tab\\there"'


ALLOC = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"}


@pytest.mark.parametrize(
    ("resources", "resource", "divisor", "want"),
    [
        ({"limits": {"cpu": "250m"}}, "limits.cpu", None, "1"),
        ({"limits": {"cpu": "250m"}}, "limits.cpu", "1m", "250"),
        ({"limits": {"cpu": "1500m"}}, "limits.cpu", "1", "2"),
        ({"requests": {"cpu": "100m"}}, "requests.cpu", "1m", "100"),
        ({"limits": {"memory": "64Mi"}}, "limits.memory", "1Mi", "64"),
        ({"limits": {"memory": "64Mi"}}, "limits.memory", None, "67108864"),
        ({"limits": {"memory": "1Gi"}}, "limits.memory", "1G", "2"),
        ({"requests": {"memory": "1Ki"}}, "requests.memory", "1k", "2"),
        ({}, "limits.cpu", None, "4"),
        ({}, "limits.memory", "1Mi", "8192"),
        ({}, "limits.ephemeral-storage", "1Gi", "100"),
        ({}, "requests.cpu", None, "0"),
        ({}, "requests.memory", None, "0"),
        ({"limits": {"hugepages-2Mi": "4Mi"}}, "limits.hugepages-2Mi", "1Mi", "4"),
    ],
)
def test_resource_field_ref(resources: Json, resource: str, divisor: str | None, want: str) -> None:
    ref: Json = {"resource": resource}
    if divisor:
        ref["divisor"] = divisor
    _, c = typed({}, {"resources": resources})
    assert resource_value(c, field_ref(ref), ALLOC) == want


def test_resource_field_ref_other_container_and_errors() -> None:
    pod: Json = {"spec": {"containers": [{"name": "side", "resources": {"limits": {"cpu": "2"}}}]}}
    ref = {"resource": "limits.cpu", "containerName": "side", "divisor": "1m"}
    p, c = typed(pod)
    assert resource_value(c, field_ref(ref), ALLOC, pod=p) == "2000"
    with pytest.raises(ContainerConfigError, match="container gone not found"):
        resource_value(c, field_ref({**ref, "containerName": "gone"}), ALLOC, pod=p)
    with pytest.raises(ContainerConfigError, match="unsupported container resource"):
        resource_value(c, field_ref({"resource": "limits.pods"}), ALLOC)


def test_env_from_prefix_and_invalid_names() -> None:
    good, bad = env_from_items({"key": "v", "1bad": "x", "a.b": "y", "sp ace": "z"}, "")
    assert good == [("a.b", "y"), ("key", "v")]
    assert bad == ["1bad", "sp ace"]
    good, bad = env_from_items({"1bad": "x"}, "P_")
    assert good == [("P_1bad", "x")] and bad == []


# ---- the manager, with fake objects and services ----------------------------------------------
class FakeApi:
    def __init__(self, objects: Mapping[tuple[str, str, str], Json]) -> None:
        self.objects = dict(objects)
        self.gets = 0

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Json:
        self.gets += 1
        key = (resource.plural, namespace or "", name)
        if key not in self.objects:
            raise NotFound(code=404, reason="NotFound", message="gone", target=name)
        return self.objects[key]


class FakeServices:
    def __init__(self, services: list[Json], synced: bool = True) -> None:
        self.services = services
        self.synced = synced

    async def wait_synced(self, within: float) -> bool:
        return self.synced

    def env(self, namespace: str, *, links: bool) -> dict[str, str]:
        return dict(service_env(select_services(self.services, namespace, links=links)))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OBJECTS = {
    ("configmaps", "ns", "cfg"): {"data": {"color": "blue", "size": "L", "bad key": "x"}},
    ("secrets", "ns", "sec"): {"data": {"password": b64("hunter2")}},
}


def manager(
    api: FakeApi | None = None, services: FakeServices | None = None
) -> tuple[EnvironmentManager, list[ev.PodEvent]]:
    recorded: list[ev.PodEvent] = []

    async def no_sandbox(uid: str) -> list[str]:
        return []

    m = EnvironmentManager(
        ObjectCache(api or FakeApi(OBJECTS)),
        services=services or FakeServices([svc("kubernetes", "default", "10.0.0.1")]),
        host_ips=lambda: ("192.168.1.2",),
        allocatable=lambda: ALLOC,
        pod_ips=no_sandbox,
        record=recorded.append,
    )
    return m, recorded


async def test_resolve_full_container() -> None:
    m, recorded = manager(services=FakeServices([svc("web", "ns", "10.0.0.8")]))
    container: Json = {
        "name": "c",
        "command": ["sh", "-c", "echo $(GREETING) $$(GREETING) $(NOPE)"],
        "args": ["$(COLOR_color)"],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "COLOR_"}],
        "env": [
            {"name": "LATER_REF", "value": "$(GREETING)"},
            {"name": "GREETING", "value": "hi-$(COLOR_size)"},
            {"name": "SVC", "value": "$(WEB_SERVICE_HOST)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "EMPTY", "value": ""},
        ],
    }
    out = await resolve(m, POD, container)
    env = dict(out.env)
    assert env["COLOR_color"] == "blue" and env["COLOR_size"] == "L"
    assert "COLOR_bad key" not in env
    assert env["LATER_REF"] == "$(GREETING)"
    assert env["GREETING"] == "hi-L"
    assert env["SVC"] == "10.0.0.8"
    assert env["PW"] == "hunter2" and env["COLOR"] == "blue"
    assert env["IP"] == "10.1.0.5"
    assert env["EMPTY"] == ""
    assert env["WEB_SERVICE_HOST"] == "10.0.0.8"
    assert list(out.command) == ["sh", "-c", "echo hi-L $(GREETING) $(NOPE)"]
    assert list(out.args) == ["blue"]
    assert container["args"] == ["$(COLOR_color)"]  # the spec itself is untouched
    assert [e.reason for e in recorded] == [INVALID_ENV_NAMES]
    assert recorded[0].message == (
        "Keys [COLOR_bad key] from the EnvFrom configmap ns/cfg were skipped since they are "
        "considered invalid environment variable names."
    )


async def test_declared_vars_win_over_service_vars() -> None:
    m, _ = manager(services=FakeServices([svc("web", "ns", "10.0.0.8")]))
    out = await resolve(m, POD, {"env": [{"name": "WEB_SERVICE_HOST", "value": "mine"}]})
    assert [v for k, v in out.env if k == "WEB_SERVICE_HOST"] == ["mine"]


async def test_enable_service_links_false_keeps_master_service() -> None:
    m, _ = manager(services=FakeServices([svc("kubernetes", "default"), svc("web", "ns")]))
    pod = {**POD, "spec": {**POD["spec"], "enableServiceLinks": False}}
    env = dict((await resolve(m, pod, {"name": "c"})).env)
    assert "KUBERNETES_SERVICE_HOST" in env and "WEB_SERVICE_HOST" not in env


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        (
            {"configMapKeyRef": {"name": "cfg", "key": "k"}},
            "couldn't find key k in ConfigMap ns/cfg",
        ),
        ({"secretKeyRef": {"name": "sec", "key": "k"}}, "couldn't find key k in Secret ns/sec"),
    ],
)
async def test_missing_refs_are_config_errors(item: Json, message: str) -> None:
    m, _ = manager()
    with pytest.raises(ContainerConfigError) as err:
        await resolve(m, POD, {"env": [{"name": "X", "valueFrom": item}]})
    assert str(err.value) == message
    field, ref = next(iter(item.items()))
    optional = {field: {**ref, "optional": True}}
    out = await resolve(m, POD, {"env": [{"name": "X", "valueFrom": optional}]})
    assert "X" not in dict(out.env)


async def test_env_from_missing() -> None:
    m, _ = manager()
    with pytest.raises(ContainerConfigError, match='secret "gone" not found'):
        await resolve(m, POD, {"envFrom": [{"secretRef": {"name": "gone"}}]})
    out = await resolve(m, POD, {"envFrom": [{"secretRef": {"name": "gone", "optional": True}}]})
    assert dict(out.env) == dict(service_env([svc("kubernetes", "default", "10.0.0.1")]))


async def test_services_not_synced_is_a_config_error() -> None:
    m, _ = manager(services=FakeServices([], synced=False))
    with pytest.raises(ContainerConfigError, match="services have not yet been read"):
        await resolve(m, POD, {"name": "c"})


async def test_objects_fetched_once_per_resolve_and_cached() -> None:
    api = FakeApi(OBJECTS)
    m, _ = manager(api)
    refs = [
        {"name": f"V{i}", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}}
        for i in range(3)
    ]
    await resolve(m, POD, {"env": refs})
    await resolve(m, POD, {"env": refs})
    assert api.gets == 1


async def test_pod_ip_from_sandbox_first_then_status() -> None:
    async def sandbox(uid: str) -> list[str]:
        return ["10.9.9.9"]

    m = EnvironmentManager(
        ObjectCache(FakeApi({})),
        services=None,
        host_ips=lambda: ("192.168.1.2",),
        allocatable=lambda: ALLOC,
        pod_ips=sandbox,
    )
    c: Json = {"env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    assert dict((await resolve(m, POD, c)).env)["IP"] == "10.9.9.9"
    given = await resolve(m, POD, c, pod_ips=["10.7.7.7"])
    assert dict(given.env)["IP"] == "10.7.7.7"
    host_net = {"metadata": POD["metadata"], "spec": {"hostNetwork": True}}
    m2, _ = manager(services=FakeServices([]))
    assert dict((await resolve(m2, host_net, c)).env)["IP"] == "192.168.1.2"
