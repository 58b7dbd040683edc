"""CNI 1.x request parsing, result/error JSON and the plugin<->agent wire format.
Standard library only and pure (no sockets, no netlink): shared by the plugin and the agent."""

from __future__ import annotations

import json
from collections.abc import Mapping

# No dataclasses/typing at run time: each import is milliseconds on every exec of the plugin.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]
else:
    Json = dict

SUPPORTED_VERSIONS = ("1.0.0", "1.1.0")
PLUGIN_TYPE = "pykubelet-cni"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
MAX_MESSAGE = 1 << 20

# Error codes of the CNI spec (1.x); 11 asks the runtime to try again later.
E_INCOMPATIBLE_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_INVALID_ENV = 4
E_IO = 5
E_DECODE = 6
E_INVALID_CONFIG = 7
E_TRY_AGAIN_LATER = 11
E_PLUGIN_NOT_AVAILABLE = 50
E_INTERNAL = 999


class CniError(Exception):
    """A failure that the plugin reports to the runtime as CNI error JSON."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, cni_version: str = SUPPORTED_VERSIONS[0]) -> Json:
        return {
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CniError:
        return cls(
            int(data.get("code", E_INTERNAL)),
            str(data.get("msg", "")),
            str(data.get("details", "")),
        )


class Request:
    """One CNI invocation: the CNI_* environment and the parsed network config from stdin."""

    __slots__ = ("args", "command", "config", "container_id", "ifname", "netns", "path")

    def __init__(
        self,
        command: str,
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: Mapping[str, str] | None = None,
        path: str = "",
        config: Json | None = None,
    ) -> None:
        self.command, self.container_id, self.netns = command, container_id, netns
        self.ifname, self.path = ifname, path
        self.args: Mapping[str, str] = dict(args or {})
        self.config: Json = config if config is not None else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    @property
    def cni_version(self) -> str:
        return str(self.config.get("cniVersion", SUPPORTED_VERSIONS[0]))

    def to_json(self) -> Json:
        return {
            "command": self.command,
            "containerID": self.container_id,
            "netns": self.netns,
            "ifname": self.ifname,
            "args": dict(self.args),
            "path": self.path,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, data: Any) -> Request:
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise CniError(E_DECODE, "malformed request from plugin")
        args = data.get("args") or {}
        if not isinstance(args, dict):
            raise CniError(E_DECODE, "malformed request from plugin", "args")
        return cls(
            command=str(data.get("command", "")),
            container_id=str(data.get("containerID", "")),
            netns=str(data.get("netns", "")),
            ifname=str(data.get("ifname", "")),
            args={str(k): str(v) for k, v in args.items()},
            path=str(data.get("path", "")),
            config=data["config"],
        )


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS: `K=V;K2=V2` (IgnoreUnknown=1, K8S_POD_NAMESPACE, K8S_POD_NAME, ...)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CniError(E_INVALID_ENV, "invalid CNI_ARGS", f"pair {part!r} has no key=value")
        out[key] = value
    return out


def parse_config(raw: bytes) -> Json:
    """The network config from stdin: a JSON object with a supported cniVersion and our type."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CniError(E_DECODE, "failed to decode network config", str(e)) from None
    if not isinstance(data, dict):
        raise CniError(E_DECODE, "failed to decode network config", "not a JSON object")
    version = data.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(E_INVALID_CONFIG, "invalid network config", "cniVersion missing")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            E_INCOMPATIBLE_VERSION,
            "incompatible CNI version",
            f"config has {version}; plugin supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    if data.get("type") != PLUGIN_TYPE:
        raise CniError(
            E_INVALID_CONFIG,
            "invalid network config",
            f"type is {data.get('type')!r}, not {PLUGIN_TYPE!r}",
        )
    return data


def parse_request(env: Mapping[str, str], stdin: bytes) -> Request:
    """Build the Request for CNI_COMMAND from the environment and stdin; checks what the
    command needs (container ID, netns and ifname for ADD; container ID and ifname for DEL)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(E_INVALID_ENV, "invalid CNI_COMMAND", repr(command))
    if command == "VERSION":
        return Request(command=command)
    config = parse_config(stdin)
    need = {
        "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
        "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
        "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    }.get(command, ())
    missing = [name for name in need if not env.get(name)]
    if missing:
        raise CniError(E_INVALID_ENV, "missing CNI environment variables", ", ".join(missing))
    return Request(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        path=env.get("CNI_PATH", ""),
        config=config,
    )


def version_result(cni_version: str = SUPPORTED_VERSIONS[-1]) -> Json:
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def encode_message(message: Mapping[str, Any]) -> bytes:
    """One message on the plugin socket: compact JSON and a newline."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_message(raw: bytes) -> Any:
    if len(raw) > MAX_MESSAGE:
        raise CniError(E_DECODE, "message too large", f"{len(raw)} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CniError(E_DECODE, "malformed message", str(e)) from None


def reply_ok(result: Json | None) -> Json:
    return {"ok": True, "result": result}


def reply_error(err: CniError, cni_version: str) -> Json:
    return {"ok": False, "error": err.to_json(cni_version)}
