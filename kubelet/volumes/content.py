"""Pure planning of what the agent writes into configMap, secret, downwardAPI and projected
volumes: file paths, bytes and modes from the pod and fetched objects. No I/O, no apiserver.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from kube.jsontypes import JsonMap
from kube.quantity import QuantityError, parse_quantity
from kubelet.pods.seams import VolumeSetupError

DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


Payload = dict[str, FileProjection]


@dataclass(frozen=True)
class TokenSpec:
    """One service-account token a projected volume asks for."""

    service_account: str
    audience: str
    expiration_seconds: int


@dataclass
class Sources:
    """The objects a pod's volumes read, as fetched: None means it does not exist."""

    configmaps: dict[str, JsonMap | None] = field(default_factory=dict)
    secrets: dict[str, JsonMap | None] = field(default_factory=dict)
    tokens: dict[TokenSpec, str] = field(default_factory=dict)


@dataclass(frozen=True)
class References:
    configmaps: frozenset[str]
    secrets: frozenset[str]
    tokens: frozenset[TokenSpec]


def _fail(volume: str, text: str) -> VolumeSetupError:
    return VolumeSetupError(f'MountVolume.SetUp failed for volume "{volume}" : {text}')


def references(pod: JsonMap, volumes: Iterable[JsonMap]) -> References:
    """The configMaps, secrets and tokens the given volumes read."""
    sa = str(pod.get("spec", {}).get("serviceAccountName") or "default")
    cms: set[str] = set()
    secrets: set[str] = set()
    tokens: set[TokenSpec] = set()
    for v in volumes:
        if "configMap" in v:
            cms.add(str(v["configMap"].get("name", "")))
        if "secret" in v:
            secrets.add(str(v["secret"].get("secretName", "")))
        for src in (v.get("projected") or {}).get("sources") or []:
            if "configMap" in src:
                cms.add(str(src["configMap"].get("name", "")))
            if "secret" in src:
                secrets.add(str(src["secret"].get("name", "")))
            if "serviceAccountToken" in src:
                tokens.add(token_spec(sa, src["serviceAccountToken"]))
    return References(frozenset(cms), frozenset(secrets), frozenset(tokens))


def token_spec(service_account: str, source: JsonMap) -> TokenSpec:
    return TokenSpec(
        service_account=service_account,
        audience=str(source.get("audience") or ""),
        expiration_seconds=int(source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS),
    )


def _key_data(obj: JsonMap, *, secret: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        if secret:
            for k, v in (obj.get("data") or {}).items():
                out[str(k)] = base64.b64decode(str(v), validate=True)
            for k, v in (obj.get("stringData") or {}).items():
                out[str(k)] = str(v).encode()
        else:
            for k, v in (obj.get("data") or {}).items():
                out[str(k)] = str(v).encode()
            for k, v in (obj.get("binaryData") or {}).items():
                out[str(k)] = base64.b64decode(str(v), validate=True)
    except (binascii.Error, ValueError) as e:
        raise VolumeSetupError(f"undecodable data in {obj.get('metadata', {})}: {e}") from e
    return out


def _keyed(
    volume: str,
    kind: str,
    name: str,
    source: JsonMap,
    obj: JsonMap | None,
    default_mode: int,
) -> Payload:
    """Files of a configMap or secret (plain volume or projected source)."""
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return {}
        raise _fail(volume, f'{kind} "{name}" not found')
    data = _key_data(obj, secret=kind == "secret")
    items = source.get("items")
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in data.items()}
    out: Payload = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise _fail(volume, f"{kind} references non-existent {kind} key: {key}")
        mode = item.get("mode")
        out[str(item["path"])] = FileProjection(
            data[key], int(mode) if mode is not None else default_mode
        )
    return out


def format_map(values: JsonMap) -> str:
    """Labels or annotations as upstream renders them: sorted `key="value"` lines."""
    return "\n".join(
        f"{k}={json.dumps(str(values[k]), ensure_ascii=False)}" for k in sorted(values)
    )


def field_value(pod: JsonMap, field_path: str) -> str:
    """A downward API fieldRef value for a volume file (metadata fields only, as upstream)."""
    meta = pod.get("metadata", {})
    simple = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    if field_path in simple:
        return str(meta.get(simple[field_path], ""))
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(field_path.split(".")[1]) or {})
    m = _SUBSCRIPT.match(field_path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ValueError(f'unsupported fieldPath "{field_path}"')


def resource_value(
    pod: JsonMap, ref: JsonMap, allocatable: Mapping[str, str], default_container: str = ""
) -> str:
    """A resourceFieldRef value: ceil(quantity / divisor); a missing limit is node allocatable."""
    name = str(ref.get("containerName") or default_container)
    resource = str(ref.get("resource", ""))
    containers = [
        *(pod.get("spec", {}).get("initContainers") or []),
        *(pod.get("spec", {}).get("containers") or []),
    ]
    spec = next((c for c in containers if c.get("name") == name), None)
    if spec is None:
        raise ValueError(f'container "{name}" not found for resource "{resource}"')
    kind, _, res = resource.partition(".")
    if kind not in ("limits", "requests") or not res:
        raise ValueError(f'unsupported resource "{resource}"')
    value = (spec.get("resources") or {}).get(kind, {}).get(res)
    if value is None and kind == "limits":
        value = allocatable.get(res)
    try:
        quantity = parse_quantity(value if value is not None else "0")
        divisor = parse_quantity(ref.get("divisor") or "1")
    except QuantityError as e:
        raise ValueError(str(e)) from e
    if divisor == 0:
        divisor = Fraction(1)
    return str(math.ceil(quantity / divisor))


def _downward(
    volume: str,
    pod: JsonMap,
    items: Iterable[JsonMap],
    default_mode: int,
    allocatable: Mapping[str, str],
) -> Payload:
    out: Payload = {}
    for item in items:
        mode = item.get("mode")
        try:
            if "fieldRef" in item:
                text = field_value(pod, str(item["fieldRef"].get("fieldPath", "")))
            elif "resourceFieldRef" in item:
                text = resource_value(pod, item["resourceFieldRef"], allocatable)
            else:
                continue
        except ValueError as e:
            raise _fail(volume, str(e)) from e
        out[str(item["path"])] = FileProjection(
            text.encode(), int(mode) if mode is not None else default_mode
        )
    return out


def plan_payload(
    pod: JsonMap, volume: JsonMap, sources: Sources, allocatable: Mapping[str, str]
) -> Payload:
    """Every file of one written volume (configMap, secret, downwardAPI, projected)."""
    name = str(volume["name"])
    if "configMap" in volume:
        src = volume["configMap"]
        mode = int(src.get("defaultMode", DEFAULT_MODE))
        cm = str(src.get("name", ""))
        return _keyed(name, "configmap", cm, src, sources.configmaps.get(cm), mode)
    if "secret" in volume:
        src = volume["secret"]
        mode = int(src.get("defaultMode", DEFAULT_MODE))
        sn = str(src.get("secretName", ""))
        return _keyed(name, "secret", sn, src, sources.secrets.get(sn), mode)
    if "downwardAPI" in volume:
        src = volume["downwardAPI"]
        mode = int(src.get("defaultMode", DEFAULT_MODE))
        return _downward(name, pod, src.get("items") or [], mode, allocatable)
    if "projected" in volume:
        return _projected(pod, volume, sources, allocatable)
    return {}


def _projected(
    pod: JsonMap, volume: JsonMap, sources: Sources, allocatable: Mapping[str, str]
) -> Payload:
    name = str(volume["name"])
    proj = volume["projected"]
    mode = int(proj.get("defaultMode", DEFAULT_MODE))
    sa = str(pod.get("spec", {}).get("serviceAccountName") or "default")
    out: Payload = {}
    for src in proj.get("sources") or []:
        if "configMap" in src:
            cm = str(src["configMap"].get("name", ""))
            out.update(
                _keyed(name, "configmap", cm, src["configMap"], sources.configmaps.get(cm), mode)
            )
        elif "secret" in src:
            sn = str(src["secret"].get("name", ""))
            out.update(_keyed(name, "secret", sn, src["secret"], sources.secrets.get(sn), mode))
        elif "downwardAPI" in src:
            out.update(
                _downward(name, pod, src["downwardAPI"].get("items") or [], mode, allocatable)
            )
        elif "serviceAccountToken" in src:
            tok = src["serviceAccountToken"]
            token = sources.tokens.get(token_spec(sa, tok))
            if token is None:
                raise _fail(name, f'no token for service account "{sa}"')
            out[str(tok.get("path", "token"))] = FileProjection(token.encode(), mode)
    return out


def uses_pod_metadata(volume: JsonMap) -> bool:
    """Whether the volume shows labels or annotations (refresh when the pod object changes)."""
    items: list[JsonMap] = list((volume.get("downwardAPI") or {}).get("items") or [])
    for src in (volume.get("projected") or {}).get("sources") or []:
        items += (src.get("downwardAPI") or {}).get("items") or []
    for item in items:
        path = str((item.get("fieldRef") or {}).get("fieldPath", ""))
        if path.startswith(("metadata.labels", "metadata.annotations")):
            return True
    return False
