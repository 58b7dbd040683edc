"""Requests as data: paths, query parameters, bodies, and errors built from Status responses.
Pure functions only; nothing here is sent.
"""

from __future__ import annotations

import json

import pytest

from kube.apiserver import requests as rq
from kube.apiserver.errors import (
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    from_response,
    from_status,
)
from kube.apiserver.requests import (
    CONFIGMAPS,
    LEASES,
    NODES,
    PODS,
    ListOptions,
    PatchType,
    Preconditions,
    Resource,
)


def status(code: int, reason: str, message: str = "", **details: object) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
            "details": details,
        }
    ).encode()


# ---- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "kwargs", "expected"),
    [
        (PODS, {}, "/api/v1/pods"),
        (PODS, {"namespace": "default"}, "/api/v1/namespaces/default/pods"),
        (PODS, {"namespace": "default", "name": "web"}, "/api/v1/namespaces/default/pods/web"),
        (
            PODS,
            {"namespace": "default", "name": "web", "subresource": "status"},
            "/api/v1/namespaces/default/pods/web/status",
        ),
        (
            PODS,
            {"namespace": "ns", "name": "web", "subresource": "eviction"},
            "/api/v1/namespaces/ns/pods/web/eviction",
        ),
        (
            Resource("serviceaccounts"),
            {"namespace": "ns", "name": "default", "subresource": "token"},
            "/api/v1/namespaces/ns/serviceaccounts/default/token",
        ),
        (NODES, {"name": "n1"}, "/api/v1/nodes/n1"),
        (NODES, {"name": "n1", "subresource": "status"}, "/api/v1/nodes/n1/status"),
        (
            LEASES,
            {"namespace": "kube-node-lease", "name": "n1"},
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
        ),
        (LEASES, {}, "/apis/coordination.k8s.io/v1/leases"),
    ],
)
def test_paths(resource: Resource, kwargs: dict[str, str], expected: str) -> None:
    assert rq.path(resource, **kwargs) == expected


def test_path_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="not namespaced"):
        rq.path(NODES, namespace="default", name="n1")
    with pytest.raises(ValueError, match="needs an object name"):
        rq.path(PODS, namespace="default", subresource="status")
    with pytest.raises(ValueError, match="invalid path segment"):
        rq.path(PODS, namespace="default", name="..")
    assert rq.path(CONFIGMAPS, namespace="a", name="x/y").endswith("/configmaps/x%2Fy")


def test_describe_names_the_object() -> None:
    assert rq.describe(PODS, namespace="default", name="web") == 'pods "web" in namespace "default"'
    assert rq.describe(PODS) == "pods in all namespaces"
    assert rq.describe(NODES, name="n1", subresource="status") == 'nodes/status "n1"'
    assert rq.describe(LEASES, namespace="x", name="n") == (
        'leases.coordination.k8s.io "n" in namespace "x"'
    )


# ---- query parameters -------------------------------------------------------------------------


def test_list_params_only_what_is_set() -> None:
    assert rq.list_params(ListOptions()) == ()
    opts = ListOptions(
        label_selector={"app": "web", "tier": "fe"},
        field_selector="spec.nodeName=n1",
        resource_version="0",
        resource_version_match="NotOlderThan",
        limit=50,
        continue_="tok",
        timeout_seconds=30,
        allow_watch_bookmarks=True,
    )
    assert rq.list_params(opts) == (
        ("labelSelector", "app=web,tier=fe"),
        ("fieldSelector", "spec.nodeName=n1"),
        ("resourceVersion", "0"),
        ("resourceVersionMatch", "NotOlderThan"),
        ("limit", "50"),
        ("continue", "tok"),
        ("timeoutSeconds", "30"),
    )
    watch = dict(rq.list_params(opts, watch=True))
    assert watch["watch"] == "true" and watch["allowWatchBookmarks"] == "true"


def test_next_page_drops_resource_version() -> None:
    opts = ListOptions(field_selector="a=b", resource_version="5", resource_version_match="Exact")
    nxt = rq.next_page(opts, "tok")
    assert nxt == ListOptions(field_selector="a=b", continue_="tok")


def test_watch_request_for_own_pods() -> None:
    req = rq.watch_request(
        PODS,
        options=ListOptions(
            field_selector={"spec.nodeName": "n1"},
            resource_version="42",
            timeout_seconds=300,
            allow_watch_bookmarks=True,
        ),
    )
    assert (req.method, req.path, req.idempotent) == ("GET", "/api/v1/pods", True)
    assert dict(req.params) == {
        "watch": "true",
        "fieldSelector": "spec.nodeName=n1",
        "resourceVersion": "42",
        "timeoutSeconds": "300",
        "allowWatchBookmarks": "true",
    }


# ---- writes -----------------------------------------------------------------------------------


def test_create_takes_namespace_from_metadata() -> None:
    obj = {"metadata": {"name": "cfg", "namespace": "team"}, "data": {}}
    req = rq.create_request(CONFIGMAPS, obj, field_manager="pykubelet")
    assert (req.method, req.path) == ("POST", "/api/v1/namespaces/team/configmaps")
    assert dict(req.params) == {"fieldManager": "pykubelet"}
    assert json.loads(req.body or b"") == obj
    assert not req.idempotent
    assert req.target == 'configmaps "cfg" in namespace "team"'
    with pytest.raises(ValueError, match="namespace is needed"):
        rq.create_request(CONFIGMAPS, {"metadata": {"name": "x"}})


def test_create_subresource_binding() -> None:
    binding = {"target": {"kind": "Node", "name": "n1"}, "metadata": {"name": "web"}}
    req = rq.create_request(PODS, binding, namespace="ns", name="web", subresource="binding")
    assert req.path == "/api/v1/namespaces/ns/pods/web/binding"


def test_replace_status_is_put_on_subresource() -> None:
    node = {"metadata": {"name": "n1", "resourceVersion": "7"}, "status": {}}
    req = rq.replace_request(NODES, node, subresource="status")
    assert (req.method, req.path, req.idempotent) == ("PUT", "/api/v1/nodes/n1/status", True)


@pytest.mark.parametrize(
    ("patch_type", "content_type"),
    [
        (PatchType.MERGE, "application/merge-patch+json"),
        (PatchType.STRATEGIC, "application/strategic-merge-patch+json"),
        (PatchType.APPLY, "application/apply-patch+yaml"),
    ],
)
def test_patch_content_types(patch_type: PatchType, content_type: str) -> None:
    req = rq.patch_request(
        PODS, "web", {"a": 1}, namespace="ns", patch_type=patch_type, field_manager="me"
    )
    assert req.content_type == content_type
    assert req.idempotent is (patch_type is PatchType.APPLY)


def test_json_patch_and_apply_rules() -> None:
    ops = [{"op": "replace", "path": "/data/x", "value": "1"}]
    req = rq.patch_request(CONFIGMAPS, "c", ops, namespace="n", patch_type=PatchType.JSON)
    assert req.content_type == "application/json-patch+json"
    assert json.loads(req.body or b"") == ops
    with pytest.raises(ValueError, match="JSON patch is a list"):
        rq.patch_request(CONFIGMAPS, "c", {"a": 1}, namespace="n", patch_type=PatchType.JSON)
    with pytest.raises(ValueError, match="field manager"):
        rq.patch_request(CONFIGMAPS, "c", {}, namespace="n", patch_type=PatchType.APPLY)
    apply = rq.patch_request(
        CONFIGMAPS,
        "c",
        {},
        namespace="n",
        patch_type=PatchType.APPLY,
        field_manager="m",
        force=True,
    )
    assert dict(apply.params) == {"force": "true", "fieldManager": "m"}


def test_delete_options_body() -> None:
    req = rq.delete_request(
        PODS,
        "web",
        namespace="ns",
        grace_period_seconds=0,
        preconditions=Preconditions(uid="u1"),
        propagation_policy="Background",
    )
    assert (req.method, req.path) == ("DELETE", "/api/v1/namespaces/ns/pods/web")
    assert json.loads(req.body or b"") == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Background",
        "preconditions": {"uid": "u1"},
    }
    with pytest.raises(ValueError, match='pods "web": a namespace is needed'):
        rq.delete_request(PODS, "web")


# ---- responses and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (401, "Unauthorized", Unauthorized),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (410, "Expired", Gone),
        (410, "Gone", Gone),
        (429, "TooManyRequests", TooManyRequests),
        (500, "InternalError", ServerError),
        (503, "ServiceUnavailable", ServerError),
        (422, "Invalid", ApiError),
    ],
)
def test_error_classes(code: int, reason: str, cls: type[ApiError]) -> None:
    err = from_response(code, status(code, reason, "m"))
    assert type(err) is cls
    assert (err.code, err.reason, err.message) == (code, reason, "m")
    assert err.retryable is (code in (429, 500, 503))


def test_not_found_message_names_the_object() -> None:
    req = rq.get_request(PODS, "web", namespace="default")
    body = status(404, "NotFound", 'pods "web" not found', name="web", kind="pods")
    with pytest.raises(NotFound) as info:
        rq.interpret(req, 404, body)
    err = info.value
    assert str(err) == 'pods "web" in namespace "default": not found'
    assert err.message == 'pods "web" not found'
    assert err.details == {"name": "web", "kind": "pods"}
    assert err.status["code"] == 404


def test_forbidden_message_keeps_the_servers_reason() -> None:
    req = rq.list_request(PODS)
    msg = 'pods is forbidden: User "system:node:n1" cannot list resource "pods"'
    with pytest.raises(Forbidden, match=r"^pods in all namespaces: forbidden: pods is forbidden"):
        rq.interpret(req, 403, status(403, "Forbidden", msg))


def test_too_many_requests_retry_after() -> None:
    err = from_response(429, status(429, "TooManyRequests", "slow"), retry_after="3")
    assert isinstance(err, TooManyRequests) and err.retry_after == 3.0
    err = from_response(429, status(429, "TooManyRequests", "slow", retryAfterSeconds=2))
    assert err.retry_after == 2.0


def test_error_without_status_body() -> None:
    err = from_response(502, b"<html>bad gateway</html>", target="nodes")
    assert isinstance(err, ServerError)
    assert str(err) == "nodes: HTTP 502: <html>bad gateway</html>"
    assert from_response(404, b"").reason == "NotFound"


def test_interpret_success() -> None:
    req = rq.get_request(NODES, "n1")
    assert rq.interpret(req, 200, b'{"kind":"Node"}') == {"kind": "Node"}
    assert rq.interpret(req, 200, b"") == {}


def test_list_page_fills_kind_and_reads_continue() -> None:
    page = {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "10", "continue": "tok"},
        "items": [{"metadata": {"name": "a"}}],
    }
    items, rv, token = rq.list_page(page)
    assert items == [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a"}}]
    assert (rv, token) == ("10", "tok")
    assert rq.list_page({"metadata": {"resourceVersion": "1"}, "items": None}) == ([], "1", None)


def test_watch_events() -> None:
    ev = rq.parse_event(b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}')
    assert ev == ("ADDED", {"metadata": {"name": "a"}})
    kind, obj = ev
    assert kind == "ADDED" and obj["metadata"]["name"] == "a"
    err_ev = rq.parse_event(
        json.dumps({"type": "ERROR", "object": json.loads(status(410, "Expired", "too old"))})
    )
    err = rq.event_error(err_ev, target="pods")
    assert isinstance(err, Gone) and str(err) == "pods: expired: too old"
    with pytest.raises(ValueError, match="not a watch event"):
        rq.parse_event(b'{"kind":"Status"}')


def test_from_status_code_override() -> None:
    err = from_status({"message": "x"}, code=404, target="t")
    assert isinstance(err, NotFound) and err.reason == "NotFound"
