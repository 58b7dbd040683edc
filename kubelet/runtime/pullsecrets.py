"""Image pull credentials from a pod's imagePullSecrets, matched to an image as upstream's docker
keyring does (host globs, same port, path prefix, most specific first). Pure: no API calls.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from kube.jsontypes import JsonMap
from kubelet.pods.model import Pod

DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
"""kubernetes.io/dockerconfigjson secrets: {"auths": {registry: entry}}."""
DOCKER_CFG_KEY = ".dockercfg"
"""kubernetes.io/dockercfg secrets (the legacy form): {registry: entry}."""
DEFAULT_REGISTRY = "docker.io"
DEFAULT_REGISTRY_HOST = "index.docker.io"


@dataclass(frozen=True)
class RegistryAuth:
    """One credential of a docker config entry, for the CRI AuthConfig."""

    key: str
    """The registry it is for, as normalized: host[:port][/path], no scheme."""
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""


class PullSecretError(ValueError):
    """A secret whose docker config cannot be read."""


def _decode(value: object) -> str:
    return base64.b64decode(str(value or ""), validate=True).decode("utf-8")


def _entry(key: str, entry: JsonMap) -> RegistryAuth:
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        try:
            username, sep, password = _decode(entry["auth"]).partition(":")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise PullSecretError(f'registry "{key}": "auth" is not base64 of user:password') from e
        if not sep:
            raise PullSecretError(f'registry "{key}": "auth" does not hold user:password')
    return RegistryAuth(
        key=normalize_key(key),
        username=username,
        password=password,
        identity_token=str(entry.get("identitytoken") or ""),
        registry_token=str(entry.get("registrytoken") or ""),
    )


def auths_from_secret(secret: JsonMap) -> list[RegistryAuth]:
    """The credentials of one secret (.dockercfg first, else .dockerconfigjson, as upstream)."""
    data = secret.get("data") or {}
    try:
        if data.get(DOCKER_CFG_KEY):
            entries = json.loads(_decode(data[DOCKER_CFG_KEY]))
        elif data.get(DOCKER_CONFIG_JSON_KEY):
            entries = json.loads(_decode(data[DOCKER_CONFIG_JSON_KEY])).get("auths")
        else:
            return []
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise PullSecretError(f"not a docker config: {e}") from e
    if not isinstance(entries, dict):
        raise PullSecretError("not a docker config: no registry map")
    return [_entry(k, v) for k, v in entries.items() if isinstance(v, dict)]


def normalize_key(key: str) -> str:
    """A docker config key as upstream's keyring indexes it: no scheme, no /v1/ or /v2/."""
    parts = urlsplit(key if "://" in key else f"https://{key}")
    path = parts.path
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    return parts.netloc + path if path not in ("", "/") else parts.netloc


def repository(image: str) -> str:
    """The image's repository without tag or digest, its registry spelled out
    (`busybox:1.36` -> `docker.io/library/busybox`)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    first, sep, _ = name.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        name = f"{DEFAULT_REGISTRY}/{name if sep else 'library/' + name}"
    return name


def _split(schemeless: str) -> tuple[list[str], str, str]:
    parts = urlsplit(f"https://{schemeless}")
    host, _, port = parts.netloc.partition(":")
    return host.split("."), port, parts.path


def matches(key: str, repo: str) -> bool:
    """Upstream's URLsMatch: same port, same number of host labels each matching the key's
    glob, and the key's path a prefix of the image's."""
    key_host, key_port, key_path = _split(key)
    host, port, path = _split(repo)
    if key_port != port or len(key_host) != len(host) or not path.startswith(key_path):
        return False
    return all(fnmatch.fnmatchcase(h, k) for k, h in zip(key_host, host, strict=True))


def _is_default_registry(repo: str) -> bool:
    first, sep, _ = repo.partition("/")
    if not sep:
        return bool(first)
    return first in (DEFAULT_REGISTRY, DEFAULT_REGISTRY_HOST) or not any(ch in first for ch in ".:")


def lookup(image: str, auths: Iterable[RegistryAuth]) -> list[RegistryAuth]:
    """The credentials to try for `image`, in order: keys sorted in reverse (the more specific
    path first), each key's credentials in the order the secrets gave them. Empty: pull without
    credentials."""
    by_key: dict[str, list[RegistryAuth]] = {}
    for a in auths:
        by_key.setdefault(a.key, []).append(a)
    repo = repository(image)
    found = [a for k in sorted(by_key, reverse=True) if matches(k, repo) for a in by_key[k]]
    if not found and _is_default_registry(repo):
        found = by_key.get(DEFAULT_REGISTRY_HOST, [])
    return found


def secret_names(pod: Pod) -> Sequence[str]:
    """spec.imagePullSecrets names, in order, empty names dropped (as decoded)."""
    return list(pod.image_pull_secrets)
