"""Pure translation of a Pod (API JSON as a plain dict) into CRI sandbox and container configs.
It only builds protobuf messages: no gRPC, no filesystem, no clock, no DNS policy or env resolving.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cri import api
from kube.jsontypes import JsonMap, JsonObject
from kube.quantity import QuantityError, parse_cpu, parse_memory
from kubelet.pods.model import PodSpecError
from kubelet.pods.qos import QOSClass, qos_class_of
from kubelet.runtime import labels

POD_LOGS_ROOT = "/var/log/pods"
SECCOMP_ROOT = "/var/lib/kubelet/seccomp"
HOSTNAME_MAX = 63

# Upstream's pkg/kubelet/cm constants for cgroup CPU settings.
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
QUOTA_PERIOD_US = 100000
MIN_QUOTA_US = 1000

# Upstream's pkg/kubelet/qos policy (the class itself: kubelet.pods.qos).
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000
NODE_CRITICAL_PRIORITY_CLASS = "system-node-critical"

# Upstream's pkg/securitycontext defaults for procMount Default (Unmasked sends none).
DEFAULT_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_INT64_MAX = 2**63 - 1
_PROTOCOLS = {"TCP": api.TCP, "UDP": api.UDP, "SCTP": api.SCTP}
_SECCOMP_TYPES = {
    "RuntimeDefault": api.SecurityProfile.RuntimeDefault,
    "Unconfined": api.SecurityProfile.Unconfined,
    "Localhost": api.SecurityProfile.Localhost,
}


@dataclass(frozen=True)
class DNSSettings:
    """The resolv.conf the sandbox gets; computing it from dnsPolicy happens elsewhere."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- quantities


def milli_cpu_to_shares(milli: int) -> int:
    """cgroup cpu.shares for a CPU request: 1024 per core, clamped to [2, 262144]."""
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * SHARES_PER_CPU // 1000))


def milli_cpu_to_quota(milli: int, period: int = QUOTA_PERIOD_US) -> int:
    """CFS quota (µs per period) for a CPU limit; 0 means unlimited; at least 1 ms otherwise."""
    if milli == 0:
        return 0
    return max(MIN_QUOTA_US, milli * period // 1000)


# ---------------------------------------------------------------------------- reading the dict


class _Reader:
    """Typed access to the pod dict that raises PodSpecError with the full location."""

    def __init__(self, pod: JsonMap, container: str | None = None) -> None:
        meta = _obj(pod, "metadata")
        self.ref = f"{meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"
        self.container = container

    def fail(self, field: str, problem: str) -> PodSpecError:
        return PodSpecError(self.ref, field, problem, self.container)

    def int_or_none(self, d: JsonMap, key: str, path: str) -> int | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise self.fail(f"{path}{key}", f"must be a non-negative integer, got {v!r}")
        return v

    def strings(self, d: JsonMap, key: str, path: str) -> list[str]:
        v = d.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise self.fail(f"{path}{key}", f"must be a list of strings, got {v!r}")
        return list(v)

    def cpu(self, value: object, field: str) -> int:
        return self._quantity(parse_cpu, value, field)

    def memory(self, value: object, field: str) -> int:
        return self._quantity(parse_memory, value, field)

    def _quantity(self, parse: Callable[[object], int], value: object, field: str) -> int:
        try:
            n = parse(value)
        except QuantityError as e:
            raise self.fail(field, str(e)) from None
        if n > _INT64_MAX:
            raise self.fail(field, f"quantity out of range {value!r}")
        return n


def _obj(d: JsonMap, key: str) -> JsonMap:
    v = d.get(key)
    return v if isinstance(v, Mapping) else {}


def _list(d: JsonMap, key: str) -> list[JsonMap]:
    v = d.get(key)
    return [x for x in v if isinstance(x, Mapping)] if isinstance(v, list) else []


def _all_containers(spec: JsonMap) -> list[JsonMap]:
    keys = ("initContainers", "containers", "ephemeralContainers")
    return [c for k in keys for c in _list(spec, k)]


# ---------------------------------------------------------------------------- sandbox


def pod_log_directory(pod: JsonMap, root: str = POD_LOGS_ROOT) -> str:
    """Upstream's sandbox log directory: <root>/<namespace>_<name>_<uid>."""
    meta = _obj(pod, "metadata")
    ns = meta.get("namespace") or "default"
    return posixpath.join(root, f"{ns}_{meta.get('name', '')}_{meta.get('uid', '')}")


def pod_hostname(pod: JsonMap) -> str:
    """spec.hostname or the pod name, cut to 63 chars with trailing '-' and '.' trimmed.

    Empty for hostNetwork pods: upstream leaves the sandbox hostname unset there so the container
    sees the node's own hostname (the UTS namespace is the host's). setHostnameAsFQDN and
    subdomain need the cluster domain and belong with the DNS settings; not done here.
    """
    spec = _obj(pod, "spec")
    if spec.get("hostNetwork"):
        return ""
    name = str(spec.get("hostname") or _obj(pod, "metadata").get("name") or "")
    if len(name) > HOSTNAME_MAX:
        name = name[:HOSTNAME_MAX].rstrip("-.")
        if not name:
            raise _Reader(pod).fail("spec.hostname", "is empty after truncation to 63 chars")
    return name


def namespace_options(pod: JsonMap) -> api.NamespaceOption:
    """Network NODE if hostNetwork else POD; pid NODE if hostPID, POD if shareProcessNamespace,
    else CONTAINER; ipc NODE if hostIPC else POD; user namespace NODE (hostUsers: false is
    refused: it needs ID mappings this agent does not allocate yet)."""
    spec = _obj(pod, "spec")
    if spec.get("hostUsers") is False:
        raise _Reader(pod).fail("spec.hostUsers", "user namespaces (false) are not supported")
    if spec.get("hostPID"):
        pid = api.NODE
    elif spec.get("shareProcessNamespace"):
        pid = api.POD
    else:
        pid = api.CONTAINER
    return api.NamespaceOption(
        network=api.NODE if spec.get("hostNetwork") else api.POD,
        pid=pid,
        ipc=api.NODE if spec.get("hostIPC") else api.POD,
        userns_options=api.UserNamespace(mode=api.NODE),
    )


def _port(r: _Reader, p: JsonMap, path: str) -> api.PortMapping | None:
    host_port = r.int_or_none(p, "hostPort", path)
    if not host_port:
        return None
    container_port = r.int_or_none(p, "containerPort", path)
    if container_port is None or not 0 < container_port < 65536:
        raise r.fail(f"{path}containerPort", f"must be 1-65535, got {container_port!r}")
    if host_port > 65535:
        raise r.fail(f"{path}hostPort", f"must be 1-65535, got {host_port!r}")
    protocol = p.get("protocol") or "TCP"
    if protocol not in _PROTOCOLS:
        raise r.fail(f"{path}protocol", f"unknown protocol {protocol!r}")
    return api.PortMapping(
        protocol=_PROTOCOLS[protocol],
        container_port=container_port,
        host_port=host_port,
        host_ip=str(p.get("hostIP") or ""),
    )


def port_mappings(pod: JsonMap) -> list[api.PortMapping]:
    """hostPort mappings of the regular containers (upstream also lists hostPort 0 entries, which
    containerd drops before calling CNI, so leaving them out here is equivalent)."""
    out: list[api.PortMapping] = []
    for c in _list(_obj(pod, "spec"), "containers"):
        r = _Reader(pod, str(c.get("name", "")))
        for i, p in enumerate(_list(c, "ports")):
            mapping = _port(r, p, f"ports[{i}].")
            if mapping is not None:
                out.append(mapping)
    return out


def _seccomp(
    r: _Reader, profile: JsonMap, path: str, default: api.SecurityProfile.ProfileType.V
) -> api.SecurityProfile:
    kind = profile.get("type")
    if kind is None:
        return api.SecurityProfile(profile_type=default)
    if kind not in _SECCOMP_TYPES:
        raise r.fail(f"{path}seccompProfile.type", f"unknown type {kind!r}")
    ref = ""
    if kind == "Localhost":
        local = profile.get("localhostProfile")
        if not isinstance(local, str) or not local:
            raise r.fail(f"{path}seccompProfile.localhostProfile", "required for Localhost")
        ref = posixpath.join(SECCOMP_ROOT, local)
    return api.SecurityProfile(profile_type=_SECCOMP_TYPES[kind], localhost_ref=ref)


def _selinux(options: JsonMap) -> api.SELinuxOption | None:
    if not options:
        return None

    def get(key: str) -> str:
        return str(options.get(key) or "")

    return api.SELinuxOption(
        user=get("user"), role=get("role"), type=get("type"), level=get("level")
    )


def _int64(value: int | None) -> api.Int64Value | None:
    return api.Int64Value(value=value) if value is not None else None


def _pod_groups(r: _Reader, pod_sc: JsonMap) -> list[int]:
    """fsGroup first, then supplementalGroups, in upstream's order."""
    groups: list[int] = []
    fs_group = r.int_or_none(pod_sc, "fsGroup", "spec.securityContext.")
    if fs_group is not None:
        groups.append(fs_group)
    raw = pod_sc.get("supplementalGroups") or []
    if not isinstance(raw, list) or any(isinstance(g, bool) or not isinstance(g, int) for g in raw):
        raise r.fail("spec.securityContext.supplementalGroups", f"must be integers, got {raw!r}")
    return groups + list(raw)


def _sysctls(r: _Reader, pod_sc: JsonMap) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, s in enumerate(_list(pod_sc, "sysctls")):
        name = s.get("name")
        if not isinstance(name, str) or not name:
            raise r.fail(f"spec.securityContext.sysctls[{i}].name", "required")
        out[name] = str(s.get("value") or "")
    return out


def _sandbox_linux(pod: JsonMap, cgroup_parent: str) -> api.LinuxPodSandboxConfig:
    r = _Reader(pod)
    spec = _obj(pod, "spec")
    pod_sc = _obj(spec, "securityContext")
    privileged = any(
        _obj(c, "securityContext").get("privileged") is True for c in _all_containers(spec)
    )
    sc = api.LinuxSandboxSecurityContext(
        namespace_options=namespace_options(pod),
        selinux_options=_selinux(_obj(pod_sc, "seLinuxOptions")),
        run_as_user=_int64(r.int_or_none(pod_sc, "runAsUser", "spec.securityContext.")),
        run_as_group=_int64(r.int_or_none(pod_sc, "runAsGroup", "spec.securityContext.")),
        supplemental_groups=_pod_groups(r, pod_sc),
        privileged=privileged,
        seccomp=_seccomp(
            r,
            _obj(pod_sc, "seccompProfile"),
            "spec.securityContext.",
            api.SecurityProfile.RuntimeDefault,
        ),
    )
    return api.LinuxPodSandboxConfig(
        cgroup_parent=cgroup_parent, security_context=sc, sysctls=_sysctls(r, pod_sc)
    )


def sandbox_config(
    pod: JsonMap,
    *,
    attempt: int,
    log_dir: str,
    dns: DNSSettings | None,
    cgroup_parent: str = "",
) -> api.PodSandboxConfig:
    """The RunPodSandbox config for `pod` (attempt = how many sandboxes this pod had before).

    log_dir is normally pod_log_directory(pod). DNS is passed through as given (None leaves the
    runtime's default, the host's resolv.conf). The sandbox's seccomp profile is the pod's
    securityContext.seccompProfile when set, else RuntimeDefault (upstream always forces
    RuntimeDefault on the sandbox, which only runs the pause process).
    """
    meta = _obj(pod, "metadata")
    r = _Reader(pod)
    for key in ("name", "uid"):
        if not isinstance(meta.get(key), str) or not meta.get(key):
            raise r.fail(f"metadata.{key}", "required")
    dns_config = None
    if dns is not None:
        dns_config = api.DNSConfig(
            servers=dns.nameservers, searches=dns.searches, options=dns.options
        )
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(
            name=meta["name"],
            namespace=str(meta.get("namespace") or "default"),
            uid=meta["uid"],
            attempt=attempt,
        ),
        hostname=pod_hostname(pod),
        log_directory=log_dir,
        dns_config=dns_config,
        port_mappings=port_mappings(pod),
        labels=labels.sandbox_labels(pod),
        annotations=labels.sandbox_annotations(pod),
        linux=_sandbox_linux(pod, cgroup_parent),
    )


# ---------------------------------------------------------------------------- container


def _memory_request(c: JsonMap) -> int:
    try:
        return parse_memory(_obj(_obj(c, "resources"), "requests").get("memory") or 0)
    except QuantityError:
        return 0


def oom_score_adj(pod: JsonMap, container: JsonMap, memory_capacity: int) -> int:
    """Upstream's GetContainerOOMScoreAdjust: node-critical and Guaranteed -997, BestEffort
    1000, Burstable 1000 - 1000*memoryRequest/capacity kept within [3, 999] (the code's floor is
    1000 + -997 = 3; the docs say 2). A sidecar gets no higher a score than the regular
    container with the smallest memory request, so it is not OOM-killed before them."""
    spec = _obj(pod, "spec")
    if spec.get("priorityClassName") == NODE_CRITICAL_PRIORITY_CLASS:
        return GUARANTEED_OOM_SCORE_ADJ
    qos = qos_class_of(pod)
    if qos == QOSClass.GUARANTEED:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == QOSClass.BEST_EFFORT:
        return BEST_EFFORT_OOM_SCORE_ADJ
    capacity = max(1, memory_capacity)
    score = 1000 - (1000 * _memory_request(container)) // capacity
    is_sidecar = container.get("restartPolicy") == "Always" and any(
        c is container or c.get("name") == container.get("name")
        for c in _list(spec, "initContainers")
    )
    regular = _list(spec, "containers")
    if is_sidecar and regular:
        least = min(_memory_request(c) for c in regular)
        score = min(score, 1000 - (1000 * least) // capacity)
    if score < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if score == BEST_EFFORT_OOM_SCORE_ADJ:
        return score - 1
    return score


def container_resources(
    pod: JsonMap,
    container: JsonMap,
    *,
    memory_capacity: int | None = None,
) -> api.LinuxContainerResources:
    """cpu_shares from requests.cpu (or limits.cpu when no request, as upstream), CFS quota and
    period from limits.cpu, memory limit from limits.memory, oom_score_adj from the pod's QoS
    class (needs the node's memory capacity in bytes; None leaves it 0). containerd runs with
    restrict_oom_score_adj, so it raises a negative value to its own. No hugepages yet."""
    r = _Reader(pod, str(container.get("name", "")))
    res = _obj(container, "resources")
    requests, limits = _obj(res, "requests"), _obj(res, "limits")
    out = api.LinuxContainerResources()
    cpu_limit = r.cpu(limits["cpu"], "resources.limits.cpu") if "cpu" in limits else None
    if "cpu" in requests:
        out.cpu_shares = milli_cpu_to_shares(r.cpu(requests["cpu"], "resources.requests.cpu"))
    else:
        out.cpu_shares = milli_cpu_to_shares(cpu_limit or 0)
    if cpu_limit:
        out.cpu_period = QUOTA_PERIOD_US
        out.cpu_quota = milli_cpu_to_quota(cpu_limit)
    if "memory" in limits:
        out.memory_limit_in_bytes = r.memory(limits["memory"], "resources.limits.memory")
    if "memory" in requests:
        r.memory(requests["memory"], "resources.requests.memory")  # validated, not sent
    if memory_capacity is not None:
        out.oom_score_adj = oom_score_adj(pod, container, memory_capacity)
    return out


_POD_SC_INHERITED = ("seLinuxOptions", "runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")


def effective_security_context(pod: JsonMap, container: JsonMap) -> JsonObject:
    """Pod-level defaults overlaid by the container's own securityContext (upstream's
    DetermineEffectiveSecurityContext): container values win field by field."""
    pod_sc = _obj(_obj(pod, "spec"), "securityContext")
    eff: JsonObject = {k: pod_sc[k] for k in _POD_SC_INHERITED if pod_sc.get(k) is not None}
    eff.update({k: v for k, v in _obj(container, "securityContext").items() if v is not None})
    return eff


def _capabilities(r: _Reader, sc: JsonMap) -> api.Capability | None:
    caps = _obj(sc, "capabilities")
    if not caps:
        return None
    path = "securityContext.capabilities."
    return api.Capability(
        add_capabilities=r.strings(caps, "add", path),
        drop_capabilities=r.strings(caps, "drop", path),
    )


_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_APPARMOR_TYPES = {
    "RuntimeDefault": api.SecurityProfile.RuntimeDefault,
    "Unconfined": api.SecurityProfile.Unconfined,
    "Localhost": api.SecurityProfile.Localhost,
}


def _apparmor_field(r: _Reader, profile: JsonMap, path: str) -> api.SecurityProfile:
    kind = profile.get("type")
    if kind not in _APPARMOR_TYPES:
        raise r.fail(f"{path}appArmorProfile.type", f"unknown type {kind!r}")
    ref = ""
    if kind == "Localhost":
        local = profile.get("localhostProfile")
        if not isinstance(local, str) or not local:
            raise r.fail(f"{path}appArmorProfile.localhostProfile", "required for Localhost")
        ref = local
    return api.SecurityProfile(profile_type=_APPARMOR_TYPES[kind], localhost_ref=ref)


def apparmor_profile(pod: JsonMap, container: JsonMap) -> api.SecurityProfile | None:
    """The container's AppArmor profile as upstream picks it: the container's appArmorProfile,
    else the pod's, else the deprecated per-container annotation (runtime/default, unconfined,
    localhost/<name>); None lets the runtime apply its default."""
    name = str(container.get("name", ""))
    r = _Reader(pod, name)
    own = _obj(_obj(container, "securityContext"), "appArmorProfile")
    if own:
        return _apparmor_field(r, own, "securityContext.")
    pod_level = _obj(_obj(_obj(pod, "spec"), "securityContext"), "appArmorProfile")
    if pod_level:
        return _apparmor_field(r, pod_level, "spec.securityContext.")
    value = _obj(_obj(pod, "metadata"), "annotations").get(_APPARMOR_ANNOTATION + name)
    if not isinstance(value, str) or not value:
        return None
    if value == "runtime/default":
        return api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault)
    if value == "unconfined":
        return api.SecurityProfile(profile_type=api.SecurityProfile.Unconfined)
    if value.startswith("localhost/") and len(value) > len("localhost/"):
        return api.SecurityProfile(
            profile_type=api.SecurityProfile.Localhost, localhost_ref=value[len("localhost/") :]
        )
    raise r.fail(f"metadata.annotations[{_APPARMOR_ANNOTATION}{name}]", f"invalid {value!r}")


def _proc_paths(r: _Reader, sc: JsonMap) -> tuple[list[str], list[str]]:
    """(masked, readonly) paths: upstream's defaults, none for procMount Unmasked; privileged
    containers get none either (the runtime would drop them anyway)."""
    proc_mount = sc.get("procMount") or "Default"
    if proc_mount not in ("Default", "Unmasked"):
        raise r.fail("securityContext.procMount", f"unknown value {proc_mount!r}")
    if proc_mount == "Unmasked" or sc.get("privileged") is True:
        return [], []
    return list(DEFAULT_MASKED_PATHS), list(DEFAULT_READONLY_PATHS)


def container_security_context(
    pod: JsonMap, container: JsonMap
) -> api.LinuxContainerSecurityContext:
    """The container's effective security context with the pod's groups and namespaces.

    no_new_privs is set only when allowPrivilegeEscalation is explicitly false (privileged
    containers never get it). runAsNonRoot with an explicit runAsUser 0 is refused with
    upstream's message; checking the image's user when runAsUser is unset needs the image
    and happens in the executor. Seccomp falls back to Unconfined (upstream's default with
    seccompDefault off); AppArmor to the runtime's default.
    """
    r = _Reader(pod, str(container.get("name", "")))
    sc = effective_security_context(pod, container)
    path = "securityContext."
    run_as_user = r.int_or_none(sc, "runAsUser", path)
    if sc.get("runAsNonRoot") is True and run_as_user == 0:
        raise r.fail("securityContext.runAsUser", "container's runAsUser breaks non-root policy")
    privileged = sc.get("privileged") is True
    ape = sc.get("allowPrivilegeEscalation")
    masked, readonly = _proc_paths(r, sc)
    return api.LinuxContainerSecurityContext(
        capabilities=_capabilities(r, sc),
        privileged=privileged,
        namespace_options=namespace_options(pod),
        selinux_options=_selinux(_obj(sc, "seLinuxOptions")),
        run_as_user=_int64(run_as_user),
        run_as_group=_int64(r.int_or_none(sc, "runAsGroup", path)),
        readonly_rootfs=sc.get("readOnlyRootFilesystem") is True,
        supplemental_groups=_pod_groups(r, _obj(_obj(pod, "spec"), "securityContext")),
        no_new_privs=ape is False and not privileged,
        masked_paths=masked,
        readonly_paths=readonly,
        seccomp=_seccomp(r, _obj(sc, "seccompProfile"), path, api.SecurityProfile.Unconfined),
        apparmor=apparmor_profile(pod, container),
    )


def _plain_env(r: _Reader, container: JsonMap) -> list[tuple[str, str]]:
    """The spec's literal `value` envs in order; valueFrom entries are the env module's job."""
    out: list[tuple[str, str]] = []
    for i, e in enumerate(_list(container, "env")):
        name = e.get("name")
        if not isinstance(name, str) or not name:
            raise r.fail(f"env[{i}].name", "required")
        if e.get("valueFrom") is None:
            out.append((name, str(e.get("value") or "")))
    return out


def container_config(
    pod: JsonMap,
    container: JsonMap,
    *,
    attempt: int,
    restart_count: int,
    env: Sequence[tuple[str, str]] | None = None,
    mounts: Sequence[api.Mount] | None = None,
    image_ref: str | None = None,
    spec_hash: str | None = None,
    memory_capacity: int | None = None,
    command: Sequence[str] | None = None,
    args: Sequence[str] | None = None,
) -> api.ContainerConfig:
    """The CreateContainer config for one container of `pod`.

    command and args are the spec's unless given: expanding $(VAR) references needs the
    resolved environment, so the env module expands them and the executor hands them in.
    env=None sends the spec's literal values only. image_ref (the pulled image's ID) goes in
    ImageSpec.image with the spec's name as user_specified_image, as upstream does; without it
    the spec's name is sent. spec_hash overrides labels.container_hash for the hash annotation.
    memory_capacity (the node's, bytes) enables the QoS oom_score_adj.
    log_path is <name>/<restart_count>.log, relative to the sandbox's log_directory.
    """
    name = container.get("name")
    r = _Reader(pod, str(name or ""))
    if not isinstance(name, str) or not name:
        raise r.fail("name", "required")
    image = container.get("image")
    if not isinstance(image, str) or not image:
        raise r.fail("image", "required")
    envs = env if env is not None else _plain_env(r, container)
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=attempt),
        image=api.ImageSpec(image=image_ref or image, user_specified_image=image),
        command=list(command) if command is not None else r.strings(container, "command", ""),
        args=list(args) if args is not None else r.strings(container, "args", ""),
        working_dir=str(container.get("workingDir") or ""),
        envs=[api.KeyValue(key=k, value=v.encode()) for k, v in envs],
        mounts=list(mounts or ()),
        labels=labels.container_labels(pod, container),
        annotations=labels.container_annotations(
            pod, container, restart_count=restart_count, spec_hash=spec_hash
        ),
        log_path=f"{name}/{restart_count}.log",
        stdin=container.get("stdin") is True,
        stdin_once=container.get("stdinOnce") is True,
        tty=container.get("tty") is True,
        linux=api.LinuxContainerConfig(
            resources=container_resources(pod, container, memory_capacity=memory_capacity),
            security_context=container_security_context(pod, container),
        ),
    )
