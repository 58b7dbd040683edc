"""The edge where a pod enters as apiserver JSON (watch, static manifest, mirror): decoded once
per object received (PodWorkers keeps the result) into the frozen model (pods/model.py). Every
failure is a PodSpecError naming the pod and the field. No I/O here.
"""

# Where the raw dict still goes, beside the model: the status patch base and mirror pods (they
# are sent back to the apiserver), and the readers not converted yet: criconfig (CRI sandbox and
# container configs: security context, ports, labels), volume setup (the pod dict), the volume
# sources and the handler bodies of probes and hooks (kept as written on Pod/Container, read
# where they are used), cgroups and eviction (requests, priorities), the resource fit.

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Any, TypedDict, TypeVar

from kube.jsontypes import JsonMap
from kube.quantity import parse_quantity
from kubelet.pods.model import (
    DEFAULT_GRACE_PERIOD_SECONDS,
    DEFAULT_TERMINATION_MESSAGE_PATH,
    NO_SECURITY_CONTEXT,
    Container,
    ContainerPort,
    DNSOption,
    EnvFromSource,
    EnvSource,
    EnvVar,
    FieldRef,
    HostAlias,
    KeyRef,
    Pod,
    PodDNSConfig,
    PodSpecError,
    PodUID,
    PullPolicy,
    ResourceFieldRef,
    RestartPolicy,
    SecurityContext,
    Sysctl,
    VolumeMount,
)

_E = TypeVar("_E", bound=StrEnum)


def default_pull_policy(image: str) -> PullPolicy:
    """Upstream defaulting: Always for ":latest" or no tag (and no digest), else IfNotPresent."""
    if "@" in image:
        return PullPolicy.IF_NOT_PRESENT
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        return PullPolicy.ALWAYS
    return PullPolicy.IF_NOT_PRESENT


class _Reader:
    """Typed field access on one pod dict; every failure names the pod and the field path."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def fail(self, path: str, problem: str) -> PodSpecError:
        return PodSpecError(self.ref, path, problem)

    def obj(self, d: JsonMap, key: str, path: str) -> JsonMap:
        v = d.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self.fail(f"{path}.{key}", "must be an object")
        return v

    def items(self, d: JsonMap, key: str, path: str) -> list[Any]:
        v = d.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.fail(f"{path}.{key}", "must be a list")
        return v

    def text(self, d: JsonMap, key: str, path: str, default: str | None = None) -> str:
        v = d.get(key, default)
        if v is None or not isinstance(v, str):
            raise self.fail(f"{path}.{key}", "must be a string")
        return v

    def opt_int(self, d: JsonMap, key: str, path: str) -> int | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(f"{path}.{key}", "must be an integer")
        return v

    def strings(self, d: JsonMap, key: str, path: str) -> tuple[str, ...]:
        vals = self.items(d, key, path)
        if not all(isinstance(s, str) for s in vals):
            raise self.fail(f"{path}.{key}", "must be a list of strings")
        return tuple(vals)

    def str_map(self, d: JsonMap, key: str, path: str) -> dict[str, str]:
        m = self.obj(d, key, path)
        if not all(isinstance(v, str) for v in m.values()):
            raise self.fail(f"{path}.{key}", "values must be strings")
        return dict(m)

    def enum(self, d: JsonMap, key: str, path: str, kind: type[_E]) -> _E:
        raw = self.text(d, key, path)
        try:
            return kind(raw)
        except ValueError:
            allowed = ", ".join(k.value for k in kind)
            raise self.fail(f"{path}.{key}", f"{raw!r} is not one of {allowed}") from None


def _ports(r: _Reader, c: JsonMap, path: str) -> tuple[ContainerPort, ...]:
    out = []
    for i, p in enumerate(r.items(c, "ports", path)):
        pp = f"{path}.ports[{i}]"
        if not isinstance(p, dict):
            raise r.fail(pp, "must be an object")
        port = r.opt_int(p, "containerPort", pp)
        if port is None:
            raise r.fail(f"{pp}.containerPort", "is required")
        out.append(
            ContainerPort(
                container_port=port,
                name=r.text(p, "name", pp, ""),
                protocol=r.text(p, "protocol", pp, "TCP"),
                host_port=r.opt_int(p, "hostPort", pp),
                host_ip=r.text(p, "hostIP", pp, ""),
            )
        )
    return tuple(out)


def _env_source(r: _Reader, vf: JsonMap, path: str) -> EnvSource | None:
    """The first of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef that is set."""
    if vf.get("fieldRef"):
        return FieldRef(r.text(r.obj(vf, "fieldRef", path), "fieldPath", f"{path}.fieldRef", ""))
    if vf.get("resourceFieldRef"):
        ref, rp = r.obj(vf, "resourceFieldRef", path), f"{path}.resourceFieldRef"
        divisor = ref.get("divisor")
        return ResourceFieldRef(
            resource=r.text(ref, "resource", rp, ""),
            container_name=r.text(ref, "containerName", rp, ""),
            divisor="" if divisor is None else str(divisor),
        )
    for key, kind in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
        if vf.get(key):
            ref, rp = r.obj(vf, key, path), f"{path}.{key}"
            return KeyRef(
                kind,
                r.text(ref, "name", rp, ""),
                r.text(ref, "key", rp, ""),
                bool(ref.get("optional")),
            )
    return None


def _env(r: _Reader, c: JsonMap, path: str) -> tuple[EnvVar, ...]:
    out = []
    for i, e in enumerate(r.items(c, "env", path)):
        ep = f"{path}.env[{i}]"
        if not isinstance(e, dict):
            raise r.fail(ep, "must be an object")
        vf = e.get("valueFrom")
        if vf is not None and not isinstance(vf, dict):
            raise r.fail(f"{ep}.valueFrom", "must be an object")
        out.append(
            EnvVar(
                name=r.text(e, "name", ep),
                value=r.text(e, "value", ep, ""),
                value_from=vf,
                source=_env_source(r, vf, f"{ep}.valueFrom") if vf else None,
            )
        )
    return tuple(out)


def _volume_mounts(r: _Reader, c: JsonMap, path: str) -> tuple[VolumeMount, ...]:
    out = []
    for i, vm in enumerate(r.items(c, "volumeMounts", path)):
        vp = f"{path}.volumeMounts[{i}]"
        if not isinstance(vm, dict):
            raise r.fail(vp, "must be an object")
        out.append(
            VolumeMount(
                name=r.text(vm, "name", vp, ""),
                mount_path=r.text(vm, "mountPath", vp, ""),
                read_only=vm.get("readOnly") is True,
                sub_path=r.text(vm, "subPath", vp, ""),
                sub_path_expr=r.text(vm, "subPathExpr", vp, ""),
                mount_propagation=r.text(vm, "mountPropagation", vp, ""),
            )
        )
    return tuple(out)


def _host_aliases(r: _Reader, spec: JsonMap) -> tuple[HostAlias, ...]:
    out = []
    for i, alias in enumerate(r.items(spec, "hostAliases", "spec")):
        if isinstance(alias, dict):
            ap = f"spec.hostAliases[{i}]"
            out.append(HostAlias(r.text(alias, "ip", ap, ""), r.strings(alias, "hostnames", ap)))
    return tuple(out)


def _volumes(r: _Reader, spec: JsonMap) -> tuple[JsonMap, ...]:
    out = []
    for i, v in enumerate(r.items(spec, "volumes", "spec")):
        if not isinstance(v, dict):
            raise r.fail(f"spec.volumes[{i}]", "must be an object")
        if not r.text(v, "name", f"spec.volumes[{i}]"):
            raise r.fail(f"spec.volumes[{i}].name", "must not be empty")
        out.append(v)
    return tuple(out)


def _pull_secrets(r: _Reader, spec: JsonMap) -> tuple[str, ...]:
    refs = r.items(spec, "imagePullSecrets", "spec")
    return tuple(str(ref["name"]) for ref in refs if isinstance(ref, dict) and ref.get("name"))


def _env_from(r: _Reader, c: JsonMap, path: str) -> tuple[EnvFromSource, ...]:
    out = []
    for i, src in enumerate(r.items(c, "envFrom", path)):
        sp = f"{path}.envFrom[{i}]"
        if not isinstance(src, dict):
            raise r.fail(sp, "must be an object")
        key = "configMapRef" if src.get("configMapRef") else "secretRef"
        if not src.get(key):
            continue
        ref = r.obj(src, key, sp)
        kind = "configmaps" if key == "configMapRef" else "secrets"
        name = r.text(ref, "name", f"{sp}.{key}", "")
        prefix = r.text(src, "prefix", sp, "")
        out.append(EnvFromSource(kind, name, prefix, bool(ref.get("optional"))))
    return tuple(out)


def _resources(r: _Reader, c: JsonMap, path: str) -> JsonMap:
    res = r.obj(c, "resources", path)
    for kind in ("requests", "limits"):
        for name, qty in r.obj(res, kind, f"{path}.resources").items():
            try:
                parse_quantity(qty)
            except ValueError as e:
                raise r.fail(f"{path}.resources.{kind}.{name}", str(e)) from None
    return dict(res)


def _probe(r: _Reader, c: JsonMap, key: str, path: str) -> JsonMap | None:
    return r.obj(c, key, path) if c.get(key) is not None else None


def _security_context(r: _Reader, d: JsonMap, path: str) -> SecurityContext:
    sc = r.obj(d, "securityContext", path)
    if not sc:
        return NO_SECURITY_CONTEXT
    sc_path = f"{path}.securityContext" if path else "securityContext"
    non_root = sc.get("runAsNonRoot")
    if non_root is not None and not isinstance(non_root, bool):
        raise r.fail(f"{sc_path}.runAsNonRoot", "must be true or false")
    return SecurityContext(
        run_as_user=r.opt_int(sc, "runAsUser", sc_path),
        run_as_group=r.opt_int(sc, "runAsGroup", sc_path),
        run_as_non_root=non_root,
    )


def _sysctls(r: _Reader, spec: JsonMap) -> tuple[Sysctl, ...]:
    sc = r.obj(spec, "securityContext", "spec")
    out = []
    for i, item in enumerate(r.items(sc, "sysctls", "spec.securityContext")):
        path = f"spec.securityContext.sysctls[{i}]"
        if not isinstance(item, dict):
            raise r.fail(path, "must be an object")
        out.append(Sysctl(r.text(item, "name", path), r.text(item, "value", path, "")))
    return tuple(out)


class _NodeFields(TypedDict):
    os_name: str
    host_ipc: bool
    security_context: SecurityContext
    sysctls: tuple[Sysctl, ...]


class _EnvFields(TypedDict):
    service_account_name: str
    enable_service_links: bool
    status_pod_ips: tuple[str, ...]


class _SandboxFields(TypedDict):
    host_aliases: tuple[HostAlias, ...]
    image_pull_secrets: tuple[str, ...]
    runtime_class_name: str
    volumes: tuple[JsonMap, ...]


class _DNSFields(TypedDict):
    dns_policy: str
    dns_config: PodDNSConfig | None
    hostname: str
    subdomain: str
    set_hostname_as_fqdn: bool
    hostname_override: str | None


def _node_fields(r: _Reader, spec: JsonMap) -> _NodeFields:
    """What node admission and the sandbox's identity read: OS, host IPC, security context."""
    return {
        "os_name": r.text(r.obj(spec, "os", "spec"), "name", "spec.os", ""),
        "host_ipc": spec.get("hostIPC") is True,
        "security_context": _security_context(r, spec, "spec"),
        "sysctls": _sysctls(r, spec),
    }


def _status_pod_ips(r: _Reader, pod: JsonMap) -> tuple[str, ...]:
    status = pod.get("status")
    if not isinstance(status, dict):
        return ()
    ips = [str(p["ip"]) for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return tuple(ips)


def _env_fields(r: _Reader, pod: JsonMap, spec: JsonMap) -> _EnvFields:
    """What pods/env.py reads beyond the containers: the service account, service links and
    the pod IPs the status already has."""
    return {
        "service_account_name": r.text(spec, "serviceAccountName", "spec", ""),
        "enable_service_links": spec.get("enableServiceLinks") is not False,
        "status_pod_ips": _status_pod_ips(r, pod),
    }


def _sandbox_fields(r: _Reader, spec: JsonMap) -> _SandboxFields:
    """What the sandbox's files and pulls read: hostAliases for /etc/hosts, pull secrets."""
    return {
        "host_aliases": _host_aliases(r, spec),
        "image_pull_secrets": _pull_secrets(r, spec),
        "runtime_class_name": r.text(spec, "runtimeClassName", "spec", ""),
        "volumes": _volumes(r, spec),
    }


def _dns_fields(r: _Reader, spec: JsonMap) -> _DNSFields:
    """What pods/dns.py reads: the policy, dnsConfig and the hostname fields."""
    override = spec.get("hostnameOverride")
    return {
        "dns_policy": r.text(spec, "dnsPolicy", "spec", "") or "ClusterFirst",
        "dns_config": _dns_config(r, spec),
        "hostname": r.text(spec, "hostname", "spec", ""),
        "subdomain": r.text(spec, "subdomain", "spec", ""),
        "set_hostname_as_fqdn": spec.get("setHostnameAsFQDN") is True,
        "hostname_override": None if override is None else r.text(spec, "hostnameOverride", "spec"),
    }


class _Lifecycle(TypedDict):
    post_start: JsonMap | None
    pre_stop: JsonMap | None


def _lifecycle(r: _Reader, c: JsonMap, path: str) -> _Lifecycle:
    """lifecycle's handlers, kept as written (an empty one counts as none)."""
    lifecycle = r.obj(c, "lifecycle", path)
    lp = f"{path}.lifecycle"
    return {
        "post_start": r.obj(lifecycle, "postStart", lp) or None,
        "pre_stop": r.obj(lifecycle, "preStop", lp) or None,
    }


def _container(r: _Reader, c: object, path: str, *, init: bool) -> Container:
    if not isinstance(c, dict):
        raise r.fail(path, "must be an object")
    name = r.text(c, "name", path)
    image = r.text(c, "image", path)
    if not name:
        raise r.fail(f"{path}.name", "must not be empty")
    if not image:
        raise r.fail(f"{path}.image", "must not be empty")
    pull = (
        r.enum(c, "imagePullPolicy", path, PullPolicy)
        if c.get("imagePullPolicy")
        else default_pull_policy(image)
    )
    restart = r.enum(c, "restartPolicy", path, RestartPolicy) if c.get("restartPolicy") else None
    if restart is not None and (not init or restart != RestartPolicy.ALWAYS):
        raise r.fail(f"{path}.restartPolicy", "only Always on an init container is supported")
    return Container(
        name=name,
        image=image,
        image_pull_policy=pull,
        command=r.strings(c, "command", path),
        args=r.strings(c, "args", path),
        env=_env(r, c, path),
        env_from=_env_from(r, c, path),
        volume_mounts=_volume_mounts(r, c, path),
        working_dir=r.text(c, "workingDir", path, ""),
        ports=_ports(r, c, path),
        termination_message_path=r.text(
            c, "terminationMessagePath", path, DEFAULT_TERMINATION_MESSAGE_PATH
        ),
        termination_message_policy=r.text(c, "terminationMessagePolicy", path, "File"),
        resources=_resources(r, c, path),
        restart_policy=restart,
        liveness_probe=_probe(r, c, "livenessProbe", path),
        readiness_probe=_probe(r, c, "readinessProbe", path),
        startup_probe=_probe(r, c, "startupProbe", path),
        security_context=_security_context(r, c, path),
        **_lifecycle(r, c, path),
    )


def _containers(r: _Reader, spec: JsonMap, key: str) -> tuple[Container, ...]:
    items = r.items(spec, key, "spec")
    init = key == "initContainers"
    out = tuple(_container(r, c, f"spec.{key}[{i}]", init=init) for i, c in enumerate(items))
    return out


def _ephemeral_containers(r: _Reader, spec: JsonMap) -> tuple[Container, ...]:
    """spec.ephemeralContainers; probes, ports and resources (which the apiserver refuses on
    them) are dropped, targetContainerName is kept."""
    out = []
    for i, c in enumerate(r.items(spec, "ephemeralContainers", "spec")):
        path = f"spec.ephemeralContainers[{i}]"
        base = _container(r, c, path, init=False)
        out.append(
            replace(
                base,
                ports=(),
                resources={},
                liveness_probe=None,
                readiness_probe=None,
                startup_probe=None,
                target_container_name=r.text(c, "targetContainerName", path, ""),
            )
        )
    return tuple(out)


def _dns_config(r: _Reader, spec: JsonMap) -> PodDNSConfig | None:
    if spec.get("dnsConfig") is None:
        return None
    cfg = r.obj(spec, "dnsConfig", "spec")
    options = []
    for i, opt in enumerate(r.items(cfg, "options", "spec.dnsConfig")):
        path = f"spec.dnsConfig.options[{i}]"
        if not isinstance(opt, dict):
            raise r.fail(path, "must be an object")
        value = opt.get("value")
        if value is not None and not isinstance(value, str):
            raise r.fail(f"{path}.value", "must be a string")
        options.append(DNSOption(r.text(opt, "name", path, ""), value))
    return PodDNSConfig(
        nameservers=r.strings(cfg, "nameservers", "spec.dnsConfig"),
        searches=r.strings(cfg, "searches", "spec.dnsConfig"),
        options=tuple(options),
    )


def _check_unique(r: _Reader, containers: Sequence[Container]) -> None:
    seen: set[str] = set()
    for c in containers:
        if c.name in seen:
            raise r.fail("spec.containers", f"duplicate container name {c.name!r}")
        seen.add(c.name)


class PodSpecView:
    """Converters from the apiserver's Pod JSON to the frozen model."""

    @staticmethod
    def from_api(pod: JsonMap) -> Pod:
        """Convert a Pod dict; raises PodSpecError naming ns/name and the bad field."""
        if not isinstance(pod, dict):
            raise PodSpecError("?/?", "", "pod must be an object")
        meta = pod.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        ns, nm = meta.get("namespace") or "default", meta.get("name") or "?"
        r = _Reader(f"{ns}/{nm}")
        if not isinstance(pod.get("metadata"), dict):
            raise r.fail("metadata", "must be an object")
        uid = r.text(meta, "uid", "metadata")
        if not isinstance(meta.get("name"), str) or not uid:
            raise r.fail("metadata.name" if uid else "metadata.uid", "is required")
        spec = r.obj(pod, "spec", "")
        containers = _containers(r, spec, "containers")
        if not containers:
            raise r.fail("spec.containers", "must have at least one container")
        inits = _containers(r, spec, "initContainers")
        ephemeral = _ephemeral_containers(r, spec)
        _check_unique(r, (*inits, *containers, *ephemeral))
        grace = r.opt_int(spec, "terminationGracePeriodSeconds", "spec")
        gates = r.items(spec, "readinessGates", "spec")
        return Pod(
            uid=PodUID(uid),
            namespace=ns,
            name=nm,
            containers=containers,
            init_containers=inits,
            restart_policy=r.enum(
                {"restartPolicy": spec.get("restartPolicy") or "Always"},
                "restartPolicy",
                "spec",
                RestartPolicy,
            ),
            termination_grace_period_seconds=DEFAULT_GRACE_PERIOD_SECONDS
            if grace is None
            else grace,
            active_deadline_seconds=r.opt_int(spec, "activeDeadlineSeconds", "spec"),
            deletion_timestamp=meta.get("deletionTimestamp"),
            deletion_grace_period_seconds=r.opt_int(meta, "deletionGracePeriodSeconds", "metadata"),
            host_network=bool(spec.get("hostNetwork", False)),
            node_name=r.text(spec, "nodeName", "spec", ""),
            labels=r.str_map(meta, "labels", "metadata"),
            annotations=r.str_map(meta, "annotations", "metadata"),
            readiness_gates=tuple(
                r.text(g, "conditionType", f"spec.readinessGates[{i}]")
                for i, g in enumerate(gates)
                if isinstance(g, dict)
            ),
            ephemeral_containers=ephemeral,
            resources=_resources(r, spec, "spec"),
            **_dns_fields(r, spec),
            **_node_fields(r, spec),
            **_env_fields(r, pod, spec),
            **_sandbox_fields(r, spec),
        )


def pod_from_api(pod: JsonMap) -> Pod:
    """Shorthand for PodSpecView.from_api."""
    return PodSpecView.from_api(pod)
