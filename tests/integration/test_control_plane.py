"""The harness's control plane is real and secure: stamped version, readiness, controllers at work,
and authentication/authorization as a node would meet them.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from cluster.http import request
from cluster.spec import ClusterSpec
from cluster.up import api

from .conftest import NODE

GOMOD = Path(__file__).parents[2] / "cluster" / "gobuild" / "k8s" / "go.mod"


def _module_version() -> str:
    m = re.search(r"^require k8s.io/kubernetes (v\S+)$", GOMOD.read_text(), re.M)
    assert m
    return m.group(1)


def test_version_is_stamped_release(cluster_spec: ClusterSpec) -> None:
    status, body = api(cluster_spec, "/version")
    assert status == 200
    import json

    info = json.loads(body)
    assert info["gitVersion"] == _module_version()
    assert info["gitVersion"].startswith("v1.36.")
    assert info["major"] == "1" and info["minor"] == "36"


def test_readyz(cluster_spec: ClusterSpec) -> None:
    status, body = api(cluster_spec, "/readyz")
    assert (status, body) == (200, b"ok")


def test_new_namespace_gets_default_sa_and_root_ca(cluster_spec: ClusterSpec) -> None:
    ns = f"itest-{uuid.uuid4().hex[:8]}"
    status, _ = api(
        cluster_spec,
        "/api/v1/namespaces",
        method="POST",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    )
    assert status == 201
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, int] = {}
        while time.monotonic() < deadline:
            seen["sa"] = api(cluster_spec, f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0]
            seen["ca"] = api(cluster_spec, f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")[
                0
            ]
            if seen == {"sa": 200, "ca": 200}:
                break
            time.sleep(0.5)
        assert seen == {"sa": 200, "ca": 200}
    finally:
        api(cluster_spec, f"/api/v1/namespaces/{ns}", method="DELETE")


def test_anonymous_request_is_unauthorized(cluster_spec: ClusterSpec) -> None:
    r = request(
        cluster_spec.server + "/api/v1/namespaces", ca_file=cluster_spec.pki / "server-ca.crt"
    )
    assert r.status == 401


def test_node_identity_is_limited_by_node_authorizer(cluster_spec: ClusterSpec) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    status, _ = api(cluster_spec, "/api/v1/nodes", method="POST", body=node)
    assert status in (201, 409)
    try:
        who = f"node-{NODE}"
        assert api(cluster_spec, f"/api/v1/nodes/{NODE}", who=who)[0] == 200
        assert api(cluster_spec, "/api/v1/pods", who=who)[0] == 403
        assert api(cluster_spec, "/api/v1/nodes/some-other-node", who=who)[0] == 403
        selector = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}"
        assert api(cluster_spec, selector, who=who)[0] == 200
    finally:
        api(cluster_spec, f"/api/v1/nodes/{NODE}", method="DELETE")
