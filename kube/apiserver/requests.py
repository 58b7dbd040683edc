"""Apiserver requests as plain data, and responses turned into dicts or ApiError (sans-I/O).
Pure functions only: nothing here opens a connection, sleeps, reads a clock or logs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import quote

from kube.apiserver.errors import ApiError, JsonObject, from_response, from_status

Selector = str | Mapping[str, str]
"""A label or field selector: the query string itself, or {key: value} pairs joined with `=`."""
JsonPatch = JsonObject | list[JsonObject]
"""A patch body: a list of operations for JSON patch, a dict for the other patch types."""


@dataclass(frozen=True)
class Resource:
    """One API resource: where its objects live on the apiserver."""

    plural: str
    """Lower-case plural name as in the URL: pods, nodes, leases."""
    version: str = "v1"
    group: str = ""
    """API group; "" is the core group under /api."""
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def display(self) -> str:
        """The name users see in messages: `pods`, `leases.coordination.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


PODS = Resource("pods")
NODES = Resource("nodes", namespaced=False)
NAMESPACES = Resource("namespaces", namespaced=False)
CONFIGMAPS = Resource("configmaps")
SECRETS = Resource("secrets")
SERVICES = Resource("services")
SERVICEACCOUNTS = Resource("serviceaccounts")
EVENTS = Resource("events")
PERSISTENTVOLUMECLAIMS = Resource("persistentvolumeclaims")
PERSISTENTVOLUMES = Resource("persistentvolumes", namespaced=False)
LEASES = Resource("leases", group="coordination.k8s.io")
ENDPOINTSLICES = Resource("endpointslices", group="discovery.k8s.io")
EVENTS_V1 = Resource("events", group="events.k8s.io")
RUNTIMECLASSES = Resource("runtimeclasses", group="node.k8s.io", namespaced=False)
CSINODES = Resource("csinodes", group="storage.k8s.io", namespaced=False)
CERTIFICATESIGNINGREQUESTS = Resource(
    "certificatesigningrequests", group="certificates.k8s.io", namespaced=False
)


class PatchType(Enum):
    """Patch strategies and their content types."""

    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    JSON = "application/json-patch+json"
    APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Preconditions:
    """Delete only if the object still has this uid and/or resourceVersion."""

    uid: str | None = None
    resource_version: str | None = None


@dataclass(frozen=True)
class ListOptions:
    """Query parameters shared by list and watch."""

    label_selector: Selector | None = None
    field_selector: Selector | None = None
    resource_version: str | None = None
    """"" or None: most recent (quorum read); "0": any (from the watch cache); else see match."""
    resource_version_match: str | None = None
    """NotOlderThan or Exact (list only)."""
    limit: int | None = None
    continue_: str | None = None
    timeout_seconds: int | None = None
    """Server-side timeout: the apiserver ends the list or watch after this many seconds."""
    allow_watch_bookmarks: bool = False


@dataclass(frozen=True)
class Request:
    """One HTTP request to the apiserver, ready to send."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str | None = None
    idempotent: bool = False
    """May be resent after a connection error, a 429 or a 5xx without changing the outcome."""
    target: str = ""
    """What the request is about, for error messages: `pods "web" in namespace "default"`."""
    headers: tuple[tuple[str, str], ...] = field(default=())


class WatchEvent(NamedTuple):
    """One watch event: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR, and the object (a dict)."""

    type: str
    object: JsonObject


@dataclass(frozen=True)
class ListResult:
    """All items of a (possibly paginated) list and the list's resourceVersion."""

    items: list[JsonObject]
    resource_version: str


# ---- paths and descriptions -------------------------------------------------------------------


def path(
    resource: Resource,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The URL path of a collection, an object, or an object's subresource."""
    if subresource and not name:
        raise ValueError(f"{resource.display}/{subresource}: a subresource needs an object name")
    if namespace and not resource.namespaced:
        raise ValueError(f"{resource.display} are not namespaced (got namespace {namespace!r})")
    if resource.group:
        base = f"/apis/{resource.group}/{resource.version}"
    else:
        base = f"/api/{resource.version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{_seg(namespace)}")
    parts.append(resource.plural)
    if name:
        parts.append(_seg(name))
    if subresource:
        parts.append(_seg(subresource))
    return "/".join(parts)


def _seg(value: str) -> str:
    if not value or value in (".", ".."):
        raise ValueError(f"invalid path segment {value!r}")
    return quote(value, safe="")


def describe(
    resource: Resource,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """`pods "web" in namespace "default"`, `nodes "n1"`, `pods in all namespaces`."""
    what = resource.display + (f"/{subresource}" if subresource else "")
    if name:
        what += f' "{name}"'
    if namespace:
        what += f' in namespace "{namespace}"'
    elif resource.namespaced and not name:
        what += " in all namespaces"
    return what


def selector(value: Selector | None) -> str | None:
    """A selector's query-string form; mappings become `k1=v1,k2=v2` in key order."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(f"{k}={v}" for k, v in value.items())


def list_params(options: ListOptions, *, watch: bool = False) -> tuple[tuple[str, str], ...]:
    """The query parameters of a list or watch (only those that are set)."""
    params: list[tuple[str, str]] = []
    if watch:
        params.append(("watch", "true"))
    _add(params, "labelSelector", selector(options.label_selector))
    _add(params, "fieldSelector", selector(options.field_selector))
    _add(params, "resourceVersion", options.resource_version)
    _add(params, "resourceVersionMatch", options.resource_version_match)
    _add(params, "limit", options.limit)
    _add(params, "continue", options.continue_)
    _add(params, "timeoutSeconds", options.timeout_seconds)
    if watch and options.allow_watch_bookmarks:
        params.append(("allowWatchBookmarks", "true"))
    return tuple(params)


def next_page(options: ListOptions, token: str) -> ListOptions:
    """Options of the next page: the continue token pins the snapshot, so no resourceVersion."""
    return replace(options, continue_=token, resource_version=None, resource_version_match=None)


def _add(params: list[tuple[str, str]], key: str, value: str | int | bool | None) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool):
        params.append((key, "true" if value else "false"))
    else:
        params.append((key, str(value)))


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _write_params(
    field_manager: str | None, dry_run: bool, extra: Iterable[tuple[str, str]] = ()
) -> tuple[tuple[str, str], ...]:
    params = list(extra)
    _add(params, "fieldManager", field_manager)
    if dry_run:
        params.append(("dryRun", "All"))
    return tuple(params)


def _namespace_of(resource: Resource, obj: JsonObject, namespace: str | None) -> str | None:
    if not resource.namespaced:
        return None
    ns = namespace or obj.get("metadata", {}).get("namespace")
    if not ns:
        raise ValueError(f"{resource.display}: a namespace is needed (argument or metadata)")
    return str(ns)


def _name_of(resource: Resource, obj: JsonObject) -> str:
    name = obj.get("metadata", {}).get("name")
    if not name:
        raise ValueError(f"{resource.display}: the object has no metadata.name")
    return str(name)


def _need_namespace(resource: Resource, namespace: str | None, name: str) -> None:
    if resource.namespaced and not namespace:
        raise ValueError(f'{resource.display} "{name}": a namespace is needed')


# ---- request builders -------------------------------------------------------------------------


def get_request(
    resource: Resource,
    name: str,
    *,
    namespace: str | None = None,
    subresource: str | None = None,
) -> Request:
    _need_namespace(resource, namespace, name)
    where = {"namespace": namespace, "name": name, "subresource": subresource}
    return Request(
        "GET", path(resource, **where), idempotent=True, target=describe(resource, **where)
    )


def list_request(
    resource: Resource, *, namespace: str | None = None, options: ListOptions = ListOptions()
) -> Request:
    return Request(
        "GET",
        path(resource, namespace=namespace),
        params=list_params(options),
        idempotent=True,
        target=describe(resource, namespace=namespace),
    )


def watch_request(
    resource: Resource, *, namespace: str | None = None, options: ListOptions = ListOptions()
) -> Request:
    return Request(
        "GET",
        path(resource, namespace=namespace),
        params=list_params(options, watch=True),
        idempotent=True,
        target=describe(resource, namespace=namespace),
    )


def create_request(
    resource: Resource,
    obj: JsonObject,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    field_manager: str | None = None,
    dry_run: bool = False,
) -> Request:
    """POST an object; with `subresource` (binding, eviction, token) POST to `name`'s one."""
    ns = _namespace_of(resource, obj, namespace)
    shown = (
        name or obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName")
    )
    return Request(
        "POST",
        path(resource, namespace=ns, name=name, subresource=subresource),
        params=_write_params(field_manager, dry_run),
        body=_encode(obj),
        content_type="application/json",
        target=describe(resource, namespace=ns, name=shown, subresource=subresource),
    )


def replace_request(
    resource: Resource,
    obj: JsonObject,
    *,
    namespace: str | None = None,
    subresource: str | None = None,
    field_manager: str | None = None,
    dry_run: bool = False,
) -> Request:
    """PUT the whole object (metadata.resourceVersion, if set, makes it a compare-and-swap)."""
    where = {
        "namespace": _namespace_of(resource, obj, namespace),
        "name": _name_of(resource, obj),
        "subresource": subresource,
    }
    return Request(
        "PUT",
        path(resource, **where),
        params=_write_params(field_manager, dry_run),
        body=_encode(obj),
        content_type="application/json",
        idempotent=True,
        target=describe(resource, **where),
    )


def patch_request(
    resource: Resource,
    name: str,
    patch: JsonPatch,
    *,
    namespace: str | None = None,
    patch_type: PatchType = PatchType.MERGE,
    subresource: str | None = None,
    field_manager: str | None = None,
    force: bool | None = None,
    dry_run: bool = False,
) -> Request:
    """PATCH; server-side apply (PatchType.APPLY) needs a field manager and is idempotent."""
    _need_namespace(resource, namespace, name)
    if patch_type is PatchType.APPLY and not field_manager:
        raise ValueError(f'{resource.display} "{name}": server-side apply needs a field manager')
    if (patch_type is PatchType.JSON) != isinstance(patch, list):
        raise ValueError(f'{resource.display} "{name}": JSON patch is a list, other patches a dict')
    extra: list[tuple[str, str]] = []
    if force is not None:
        _add(extra, "force", force)
    where = {"namespace": namespace, "name": name, "subresource": subresource}
    return Request(
        "PATCH",
        path(resource, **where),
        params=_write_params(field_manager, dry_run, extra),
        body=_encode(patch),
        content_type=patch_type.value,
        idempotent=patch_type is PatchType.APPLY,
        target=describe(resource, **where),
    )


def delete_request(
    resource: Resource,
    name: str,
    *,
    namespace: str | None = None,
    grace_period_seconds: int | None = None,
    preconditions: Preconditions | None = None,
    propagation_policy: str | None = None,
    dry_run: bool = False,
) -> Request:
    """DELETE with DeleteOptions. Resending is safe but may then report NotFound."""
    _need_namespace(resource, namespace, name)
    options: JsonObject = {"kind": "DeleteOptions", "apiVersion": "v1"}
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    if propagation_policy:
        options["propagationPolicy"] = propagation_policy
    if preconditions:
        pre = {"uid": preconditions.uid, "resourceVersion": preconditions.resource_version}
        options["preconditions"] = {k: v for k, v in pre.items() if v}
    if dry_run:
        options["dryRun"] = ["All"]
    where = {"namespace": namespace, "name": name}
    return Request(
        "DELETE",
        path(resource, **where),
        body=_encode(options),
        content_type="application/json",
        idempotent=True,
        target=describe(resource, **where),
    )


# ---- responses --------------------------------------------------------------------------------


def interpret(
    request: Request, code: int, body: bytes, *, retry_after: str | None = None
) -> JsonObject:
    """The response object of a successful call; raise ApiError (naming the target) otherwise."""
    if not 200 <= code < 300:
        raise from_response(code, body, target=request.target, retry_after=retry_after)
    if not body:
        return {}
    obj = json.loads(body)
    if not isinstance(obj, dict):
        raise ApiError(
            code=code, reason="BadResponse", message="not a JSON object", target=request.target
        )
    return obj


def list_page(page: JsonObject) -> tuple[list[JsonObject], str, str | None]:
    """(items with kind/apiVersion filled in, resourceVersion, continue token or None)."""
    meta = page.get("metadata") or {}
    kind = str(page.get("kind") or "")
    item_kind = kind[: -len("List")] if kind.endswith("List") else ""
    api_version = page.get("apiVersion")
    items: list[JsonObject] = []
    for item in page.get("items") or []:
        if item_kind and "kind" not in item:
            item = {"kind": item_kind, "apiVersion": api_version, **item}
        items.append(item)
    return items, str(meta.get("resourceVersion") or ""), meta.get("continue") or None


def parse_event(line: bytes | str) -> WatchEvent:
    """One line of a watch stream."""
    raw = json.loads(line)
    if not isinstance(raw, dict) or "type" not in raw or not isinstance(raw.get("object"), dict):
        raise ValueError(f"not a watch event: {str(line)[:200]}")
    return WatchEvent(str(raw["type"]), raw["object"])


def event_error(event: WatchEvent, *, target: str = "") -> ApiError:
    """The ApiError an ERROR event carries (code 410 means: list again)."""
    return from_status(event.object, target=target)


def resource_version(obj: JsonObject) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def object_key(obj: JsonObject) -> tuple[str, str]:
    """(namespace, name) of an object; namespace is "" for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
