"""What the agent writes into configMap, secret, downwardAPI and projected volumes.
Pure planning only: objects are handed in, nothing is fetched.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubelet.pods.seams import VolumeSetupError
from kubelet.volumes.content import (
    FileProjection,
    Sources,
    TokenSpec,
    format_map,
    plan_payload,
    references,
    resource_value,
    uses_pod_metadata,
)

POD: dict[str, Any] = {
    "metadata": {
        "name": "web",
        "namespace": "prod",
        "uid": "u1",
        "labels": {"b": "2", "a": 'say "hi"'},
        "annotations": {"note": "x"},
    },
    "spec": {
        "serviceAccountName": "builder",
        "containers": [
            {"name": "c", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}
        ],
    },
}
ALLOC = {"cpu": "8", "memory": "16Gi"}


def _cm(data: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "cfg"}, "data": data}


def test_configmap_all_keys_with_default_mode() -> None:
    vol = {"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600}}
    payload = plan_payload(POD, vol, Sources(configmaps={"cfg": _cm({"a": "1"})}), ALLOC)
    assert payload == {"a": FileProjection(b"1", 0o600)}


def test_configmap_items_paths_and_modes() -> None:
    vol = {
        "name": "v",
        "configMap": {
            "name": "cfg",
            "items": [{"key": "a", "path": "d/x", "mode": 0o400}, {"key": "b", "path": "y"}],
        },
    }
    src = Sources(configmaps={"cfg": _cm({"a": "1", "b": "2", "c": "3"})})
    assert plan_payload(POD, vol, src, ALLOC) == {
        "d/x": FileProjection(b"1", 0o400),
        "y": FileProjection(b"2", 0o644),
    }


def test_configmap_binary_data() -> None:
    cm = {"binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}
    vol = {"name": "v", "configMap": {"name": "cfg"}}
    assert plan_payload(POD, vol, Sources(configmaps={"cfg": cm}), ALLOC)["bin"].data == b"\x00\x01"


def test_missing_configmap_names_it() -> None:
    vol = {"name": "v", "configMap": {"name": "cfg"}}
    with pytest.raises(VolumeSetupError, match='volume "v" : configmap "cfg" not found'):
        plan_payload(POD, vol, Sources(configmaps={"cfg": None}), ALLOC)


def test_optional_missing_configmap_is_empty() -> None:
    vol = {"name": "v", "configMap": {"name": "cfg", "optional": True}}
    assert plan_payload(POD, vol, Sources(configmaps={"cfg": None}), ALLOC) == {}


def test_missing_key_fails_unless_optional() -> None:
    items = [{"key": "nope", "path": "p"}]
    src = Sources(configmaps={"cfg": _cm({"a": "1"})})
    with pytest.raises(VolumeSetupError, match="non-existent configmap key: nope"):
        plan_payload(POD, {"name": "v", "configMap": {"name": "cfg", "items": items}}, src, ALLOC)
    vol = {"name": "v", "configMap": {"name": "cfg", "items": items, "optional": True}}
    assert plan_payload(POD, vol, src, ALLOC) == {}


def test_secret_is_decoded_and_missing_named() -> None:
    secret = {"data": {"pw": base64.b64encode(b"s3").decode()}}
    vol = {"name": "v", "secret": {"secretName": "s"}}
    assert plan_payload(POD, vol, Sources(secrets={"s": secret}), ALLOC)["pw"].data == b"s3"
    with pytest.raises(VolumeSetupError, match='secret "s" not found'):
        plan_payload(POD, vol, Sources(secrets={"s": None}), ALLOC)


def test_labels_format_is_sorted_and_quoted() -> None:
    assert format_map(POD["metadata"]["labels"]) == 'a="say \\"hi\\""\nb="2"'


def test_downward_api_fields() -> None:
    vol = {
        "name": "v",
        "downwardAPI": {
            "defaultMode": 0o444,
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "one", "fieldRef": {"fieldPath": "metadata.labels['b']"}},
                {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}, "mode": 0o400},
            ],
        },
    }
    payload = plan_payload(POD, vol, Sources(), ALLOC)
    assert payload["one"] == FileProjection(b"2", 0o444)
    assert payload["ns"] == FileProjection(b"prod", 0o400)
    assert payload["labels"].data.startswith(b'a="say')


@pytest.mark.parametrize(
    ("resource", "divisor", "want"),
    [
        ("limits.memory", "1Mi", "64"),
        ("limits.memory", None, str(64 * 2**20)),
        ("requests.cpu", "1m", "250"),
        ("requests.cpu", None, "1"),
        ("limits.cpu", None, "8"),
        ("requests.memory", None, "0"),
        ("limits.memory", "1Gi", "1"),
    ],
)
def test_resource_field_ref(resource: str, divisor: str | None, want: str) -> None:
    ref: dict[str, Any] = {"containerName": "c", "resource": resource}
    if divisor:
        ref["divisor"] = divisor
    assert resource_value(POD, ref, ALLOC) == want


def test_projected_combines_sources_with_token() -> None:
    vol = {
        "name": "kube-api-access",
        "projected": {
            "defaultMode": 0o420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }
    spec = TokenSpec("builder", "", 3607)
    assert references(POD, [vol]).tokens == {spec}
    src = Sources(configmaps={"ca": {"data": {"ca.crt": "PEM"}}}, tokens={spec: "a.b.c"})
    payload = plan_payload(POD, vol, src, ALLOC)
    assert payload == {
        "token": FileProjection(b"a.b.c", 0o420),
        "ca.crt": FileProjection(b"PEM", 0o420),
        "namespace": FileProjection(b"prod", 0o420),
    }


def test_references_and_metadata_use() -> None:
    vols = [
        {"name": "a", "configMap": {"name": "c1"}},
        {"name": "b", "secret": {"secretName": "s1"}},
        {"name": "c", "projected": {"sources": [{"secret": {"name": "s2"}}]}},
    ]
    refs = references(POD, vols)
    assert refs.configmaps == {"c1"} and refs.secrets == {"s1", "s2"}
    dw = {"downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
    assert uses_pod_metadata(dw)
    assert not uses_pod_metadata(vols[0])
