"""Container environments as upstream builds them: env and envFrom from values, configMaps,
secrets, the downward API and Service links, then $(VAR) expansion. Reads the typed Pod and
Container; must not write anywhere.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError
from kube.apiserver import CONFIGMAPS, SECRETS, ApiError, NotFound, Resource
from kube.jsontypes import JsonMap
from kube.units import parse_quantity
from kubelet import events as ev
from kubelet.pods.model import (
    Container,
    EnvFromSource,
    EnvSource,
    FieldRef,
    KeyRef,
    Pod,
    ResourceFieldRef,
)
from kubelet.pods.seams import ContainerConfigError, ResolvedContainer
from kubelet.runtime import labels

log = logging.getLogger(__name__)

INVALID_ENV_NAMES = "InvalidEnvironmentVariableNames"
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*\Z")
_QUALIFIED_NAME = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z"
)
LIMIT_DEFAULTS = ("cpu", "memory", "ephemeral-storage")
"""Limits that default to node allocatable for the downward API when a container sets none."""


# ---- $(VAR) expansion (upstream third_party/forked/golang/expansion) ------------------------
def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """Look a name up in each context in turn; an unknown name stays as written: $(NAME)."""

    def lookup(name: str) -> str:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return f"$({name})"

    return lookup


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expand $(VAR) references: `$$` is an escaped `$`, an unclosed `$(` and a `$` before
    anything else are kept as they are."""
    out: list[str] = []
    checkpoint, cursor, n = 0, 0, len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close < 0:
                    out.append("$(")
                else:
                    out.append(mapping(text[cursor + 2 : close]))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def expand_command(
    container: Container, env: Sequence[tuple[str, str]]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The container's command and args with $(VAR) expanded against its final environment."""
    lookup = mapping_for(dict(env))
    return (
        tuple(expand(part, lookup) for part in container.command),
        tuple(expand(part, lookup) for part in container.args),
    )


# ---- downward API: fieldRef ------------------------------------------------------------------
def go_quote(text: str) -> str:
    """Go's %q for a string (strconv.Quote): printable runes kept, others escaped."""
    special = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f"}
    special.update({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"})
    out = []
    for ch in text:
        code = ord(ch)
        if ch in special:
            out.append(special[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def format_map(m: JsonMap) -> str:
    """Labels or annotations as the downward API writes them: sorted `k="v"` lines."""
    return "\n".join(f"{k}={go_quote(str(m[k]))}" for k in sorted(m))


def _subscript(path: str) -> tuple[str, str] | None:
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    return (head, key) if sep and head else None


def _metadata_value(pod: Pod, path: str) -> str:
    maps = {"metadata.labels": pod.labels, "metadata.annotations": pod.annotations}
    sub = _subscript(path)
    if sub is not None:
        head, key = sub
        if head not in ("metadata.labels", "metadata.annotations"):
            raise ContainerConfigError(f'fieldPath "{path}" does not support subscript')
        probe = key.lower() if head == "metadata.annotations" else key
        if not _QUALIFIED_NAME.match(probe) or len(probe.rpartition("/")[2]) > 63:
            raise ContainerConfigError(f"invalid key subscript in {path}")
        return maps[head].get(key, "")
    simple = {"metadata.name": pod.name, "metadata.namespace": pod.namespace}
    if path in simple:
        return simple[path]
    if path == "metadata.uid":
        return pod.uid
    if path in maps:
        return format_map(maps[path])
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def field_ref_value(pod: Pod, path: str, *, pod_ips: Sequence[str], host_ips: Sequence[str]) -> str:
    """One fieldRef's value (upstream podFieldSelectorRuntimeValue)."""
    if path == "spec.nodeName":
        return pod.node_name
    if path == "spec.serviceAccountName":
        return pod.service_account_name
    if path in ("status.hostIP", "status.hostIPs"):
        if not host_ips:
            raise ContainerConfigError("the node has no IP address to report as hostIP")
        return host_ips[0] if path == "status.hostIP" else ",".join(host_ips)
    if path == "status.podIP":
        return pod_ips[0] if pod_ips else ""
    if path == "status.podIPs":
        return ",".join(pod_ips)
    return _metadata_value(pod, path)


# ---- downward API: resourceFieldRef ----------------------------------------------------------
def _find_container(pod: Pod, name: str) -> Container:
    for c in (*pod.containers, *pod.init_containers):
        if c.name == name:
            return c
    raise ContainerConfigError(f"container {name} not found")


def _quantity(text: object, what: str) -> Decimal:
    try:
        return parse_quantity(str(text))
    except ValueError as e:
        raise ContainerConfigError(f"{what}: {e}") from None


def resource_value(
    container: Container,
    ref: ResourceFieldRef,
    allocatable: Mapping[str, str],
    *,
    pod: Pod | None = None,
) -> str:
    """One resourceFieldRef's value: ceil(quantity / divisor); cpu is compared in millicores.
    A limit the container does not set is the node's allocatable (cpu, memory, storage)."""
    if ref.container_name and pod is not None:
        container = _find_container(pod, ref.container_name)
    resource = ref.resource
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (
        name in LIMIT_DEFAULTS or name.startswith("hugepages-")
    ):
        raise ContainerConfigError(f"unsupported container resource : {resource}")
    values = container.resources.get(kind) or {}
    raw = values.get(name)
    if raw is None and kind == "limits" and name in LIMIT_DEFAULTS:
        raw = allocatable.get(name)
    qty = _quantity(raw if raw is not None else "0", resource)
    div_text = ref.divisor
    divisor = _quantity(div_text, "divisor") if div_text not in ("", "0") else Decimal(1)
    if name == "cpu":
        num, den = math.ceil(qty * 1000), math.ceil(divisor * 1000)
    else:
        num, den = math.ceil(qty), math.ceil(divisor)
    if den <= 0:
        raise ContainerConfigError(f"invalid divisor {div_text!r} for {resource}")
    return str(-(-num // den))


# ---- envFrom ---------------------------------------------------------------------------------
def is_env_name(name: str) -> bool:
    """Upstream IsEnvVarName: letters, digits, `_`, `-` and `.`, not starting with a digit."""
    return bool(_ENV_NAME.match(name))


def env_from_items(data: Mapping[str, str], prefix: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The (prefixed) variables of one envFrom source and the sorted names skipped as invalid."""
    good: list[tuple[str, str]] = []
    bad: list[str] = []
    for key in sorted(data):
        name = prefix + key
        if is_env_name(name):
            good.append((name, data[key]))
        else:
            bad.append(name)
    return good, sorted(bad)


def invalid_names_message(bad: Sequence[str], kind: str, namespace: str, name: str) -> str:
    return (
        f"Keys [{', '.join(bad)}] from the EnvFrom {kind} {namespace}/{name} were skipped since "
        "they are considered invalid environment variable names."
    )


def secret_data(secret: JsonMap) -> dict[str, str]:
    out = {}
    for k, v in (secret.get("data") or {}).items():
        out[k] = base64.b64decode(v or "").decode("utf-8", errors="replace")
    return out


# ---- the manager -----------------------------------------------------------------------------
class ObjectGetter(Protocol):
    async def get(self, resource: Resource, name: str, *, namespace: str | None = ...) -> Any: ...


class ServiceEnv(Protocol):
    async def wait_synced(self, within: float) -> bool: ...

    def env(self, namespace: str, *, links: bool) -> dict[str, str]: ...


_KINDS = {"configmaps": "configmap", "secrets": "secret"}


class ObjectCache:
    """GETs configMaps and secrets for env resolution, each kept a few seconds; a missing object
    becomes ContainerConfigError with upstream's text (`configmap "cfg" not found`)."""

    def __init__(
        self,
        client: ObjectGetter,
        *,
        ttl: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, JsonMap]] = {}

    async def get(self, resource: Resource, namespace: str, name: str) -> JsonMap | None:
        """The object, or None when it does not exist; other failures raise."""
        key = (resource.plural, namespace, name)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        kind = _KINDS.get(resource.plural, resource.plural)
        try:
            obj: JsonMap = await self._client.get(resource, name, namespace=namespace)
        except NotFound:
            self._cache.pop(key, None)
            return None
        except ApiError as e:
            raise ContainerConfigError(f"failed to get {kind} {namespace}/{name}: {e}") from e
        if len(self._cache) > 1000:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + self._ttl, obj)
        return obj


async def sandbox_ips(runtime: RuntimeClient, pod_uid: str) -> list[str]:
    """The IPs of the pod's newest ready sandbox, asked of the runtime ([] when it has none)."""
    f = api.PodSandboxFilter(
        label_selector={labels.POD_UID: pod_uid},
        state=api.PodSandboxStateValue(state=api.SANDBOX_READY),
    )
    try:
        sandboxes = await runtime.list_pod_sandbox(filter=f)
        if not sandboxes:
            return []
        newest = max(sandboxes, key=lambda s: s.created_at)
        net = (await runtime.pod_sandbox_status(newest.id)).status.network
    except CRIError as e:
        log.warning("pod uid=%s: could not read the sandbox IPs: %s", pod_uid, e)
        return []
    ips = [net.ip] if net.ip else []
    return ips + [a.ip for a in net.additional_ips if a.ip and a.ip not in ips]


def _data(resource: Resource, obj: JsonMap) -> dict[str, str]:
    if resource is CONFIGMAPS:
        return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
    return secret_data(obj)


class _Context:
    """One resolve call: the pod, its objects fetched once, pod IPs looked up once."""

    def __init__(self, pod: Pod, pod_ips: Sequence[str] | None) -> None:
        self.pod = pod
        self.namespace = pod.namespace
        self.objects: dict[tuple[str, str], JsonMap | None] = {}
        self.pod_ips = list(pod_ips) if pod_ips is not None else None


class EnvironmentManager:
    """Implements seams.Environment: resolves a container's env and expands command/args."""

    def __init__(
        self,
        objects: ObjectCache,
        *,
        services: ServiceEnv | None,
        host_ips: Callable[[], Sequence[str]],
        allocatable: Callable[[], Mapping[str, str]],
        pod_ips: Callable[[str], Awaitable[list[str]]] | None = None,
        record: Callable[[ev.PodEvent], None] | None = None,
        services_wait: float = 10.0,
    ) -> None:
        self._objects = objects
        self._services = services
        self._host_ips = host_ips
        self._allocatable = allocatable
        self._pod_ips = pod_ips
        self._record = record
        self._services_wait = services_wait

    async def resolve(
        self, pod: Pod, container: Container, *, pod_ips: Sequence[str] | None = None
    ) -> ResolvedContainer:
        """Upstream makeEnvironmentVariables then ExpandContainerCommandAndArgs. `pod_ips` is the
        sandbox's IPs when the caller knows them; else the pod status, else the runtime."""
        ctx = _Context(pod, pod_ips)
        service_vars = await self._service_vars(pod, ctx.namespace)
        env: dict[str, str] = {}
        for source in container.env_from:
            env.update(await self._env_from(ctx, source))
        lookup = mapping_for(env, service_vars)
        for item in container.env:
            if item.value:
                env[item.name] = expand(item.value, lookup)
            elif item.source is not None:
                resolved = await self._value_from(ctx, container, item.source)
                if resolved is None:
                    continue
                env[item.name] = resolved
            else:
                env[item.name] = ""
        final = list(env.items()) + [(k, v) for k, v in service_vars.items() if k not in env]
        command, args = expand_command(container, final)
        return ResolvedContainer(env=final, command=command, args=args)

    async def _service_vars(self, pod: Pod, namespace: str) -> dict[str, str]:
        if self._services is None:
            return {}
        if not await self._services.wait_synced(self._services_wait):
            raise ContainerConfigError(
                "services have not yet been read at least once, cannot construct envvars"
            )
        return self._services.env(namespace, links=pod.enable_service_links)

    async def _object(self, ctx: _Context, resource: Resource, name: str) -> JsonMap | None:
        key = (resource.plural, name)
        if key not in ctx.objects:
            ctx.objects[key] = await self._objects.get(resource, ctx.namespace, name)
        return ctx.objects[key]

    async def _env_from(self, ctx: _Context, source: EnvFromSource) -> list[tuple[str, str]]:
        resource = CONFIGMAPS if source.kind == CONFIGMAPS.plural else SECRETS
        kind = _KINDS[resource.plural]
        name = source.name
        obj = await self._object(ctx, resource, name)
        if obj is None:
            if source.optional:
                return []
            raise ContainerConfigError(f'{kind} "{name}" not found')
        good, bad = env_from_items(_data(resource, obj), source.prefix)
        if bad:
            self._invalid_names(ctx, invalid_names_message(bad, kind, ctx.namespace, name))
        return good

    def _invalid_names(self, ctx: _Context, message: str) -> None:
        pod = ctx.pod
        log.warning("pod %s: %s", pod.ref, message)
        if self._record is not None:
            self._record(
                ev.PodEvent(
                    pod.namespace, pod.name, pod.uid, ev.WARNING, INVALID_ENV_NAMES, message
                )
            )

    async def _value_from(
        self, ctx: _Context, container: Container, source: EnvSource
    ) -> str | None:
        """One valueFrom's value; None when an optional source is missing (the var is skipped)."""
        if isinstance(source, FieldRef):
            path = source.field_path
            ips = await self._ips(ctx) if path.startswith("status.podIP") else []
            return field_ref_value(ctx.pod, path, pod_ips=ips, host_ips=self._host_ips())
        if isinstance(source, ResourceFieldRef):
            return resource_value(container, source, self._allocatable(), pod=ctx.pod)
        return await self._key_ref(ctx, source)

    async def _key_ref(self, ctx: _Context, ref: KeyRef) -> str | None:
        resource = CONFIGMAPS if ref.kind == CONFIGMAPS.plural else SECRETS
        kind = _KINDS[resource.plural]
        name, key, optional = ref.name, ref.key, ref.optional
        obj = await self._object(ctx, resource, name)
        if obj is None:
            if optional:
                return None
            raise ContainerConfigError(f'{kind} "{name}" not found')
        data = _data(resource, obj)
        if key not in data:
            if optional:
                return None
            title = "ConfigMap" if resource is CONFIGMAPS else "Secret"
            raise ContainerConfigError(f"couldn't find key {key} in {title} {ctx.namespace}/{name}")
        return str(data[key])

    async def _ips(self, ctx: _Context) -> list[str]:
        if ctx.pod_ips is None:
            ips: list[str] = []
            if self._pod_ips is not None:  # the sandbox's own IPs: a status may be stale
                ips = await self._pod_ips(ctx.pod.uid)
            ips = ips or list(ctx.pod.status_pod_ips)
            if not ips and ctx.pod.host_network:
                ips = list(self._host_ips())
            ctx.pod_ips = ips
        return ctx.pod_ips
