"""How one setting is read from and written to its YAML form: typed codecs and the field helper.
Codecs check types and values and raise ConfigError with the setting's path; no defaults here.
Unknown keys are reported to the warning sink of the decode in progress (upstream decodes them
leniently, with a warning), or are errors when no sink is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from kube.units import format_duration, parse_duration, parse_percentage, parse_quantity
from kubelet.config.errors import ConfigError

T = TypeVar("T")
Check = Callable[[str], str | None]
"""A value check: raises ValueError, or returns a normalised form of the text (or None)."""
Note = Callable[[str], None]
"""Receives one warning line."""
_SINK: ContextVar[Note | None] = ContextVar("config_warnings", default=None)


@contextlib.contextmanager
def warnings_to(note: Note) -> Iterator[None]:
    """Within the block, unknown keys are warnings sent to `note` instead of errors."""
    token = _SINK.set(note)
    try:
        yield
    finally:
        _SINK.reset(token)


def unknown_key(path: str, key: object) -> None:
    """An unknown key at `path`: a warning when a sink is set (upstream's lenient decoding),
    else a ConfigError."""
    note = _SINK.get()
    if note is None:
        raise ConfigError(path, f'unknown field "{key}"')
    note(f'{path}: unknown field "{key}"; ignored')


class Codec(Protocol):
    """Turns one YAML value into its Python value (checking it) and back."""

    def decode(self, raw: object, path: str) -> Any: ...

    def encode(self, value: Any) -> object: ...


def type_name(raw: object) -> str:
    """The YAML-ish name of a decoded value's type, for error messages."""
    names = {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
    }
    return "mapping" if isinstance(raw, dict) else names.get(type(raw), type(raw).__name__)


def _run_check(check: Check | None, text: str, path: str) -> str:
    if check is None:
        return text
    try:
        normal = check(text)
    except ValueError as e:
        raise ConfigError(path, str(e)) from None
    return text if normal is None else normal


@dataclasses.dataclass(frozen=True)
class Str:
    """A string, optionally checked; `choices` limits it to a fixed set."""

    check: Check | None = None
    choices: tuple[str, ...] = ()

    def decode(self, raw: object, path: str) -> str:
        if not isinstance(raw, str):
            raise ConfigError(path, f"expected a string, got {type_name(raw)} {raw!r}")
        if self.choices and raw not in self.choices:
            allowed = ", ".join(f'"{c}"' for c in self.choices)
            raise ConfigError(path, f'unsupported value "{raw}": must be one of {allowed}')
        return _run_check(self.check, raw, path)

    def encode(self, value: Any) -> object:
        return value


@dataclasses.dataclass(frozen=True)
class Bool:
    """A YAML boolean (true/false); strings like "yes" are refused."""

    def decode(self, raw: object, path: str) -> bool:
        if not isinstance(raw, bool):
            raise ConfigError(path, f"expected a boolean, got {type_name(raw)} {raw!r}")
        return raw

    def encode(self, value: Any) -> object:
        return value


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer within [low, high]."""

    low: int | None = None
    high: int | None = None

    def decode(self, raw: object, path: str) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(path, f"expected an integer, got {type_name(raw)} {raw!r}")
        if self.low is not None and raw < self.low:
            raise ConfigError(path, f"invalid value {raw}: must be at least {self.low}")
        if self.high is not None and raw > self.high:
            raise ConfigError(path, f"invalid value {raw}: must be at most {self.high}")
        return raw

    def encode(self, value: Any) -> object:
        return value


@dataclasses.dataclass(frozen=True)
class Duration:
    """A Go duration string, decoded to a timedelta; never negative."""

    def decode(self, raw: object, path: str) -> timedelta:
        if not isinstance(raw, str):
            raise ConfigError(path, f'invalid duration {raw!r}: want a string such as "10s"')
        try:
            value = parse_duration(raw)
        except ValueError as e:
            raise ConfigError(path, str(e)) from None
        if value < timedelta(0):
            raise ConfigError(path, f'invalid duration "{raw}": must not be negative')
        return value

    def encode(self, value: Any) -> object:
        assert isinstance(value, timedelta)
        return format_duration(value)


def _quantity_text(raw: object, path: str) -> str:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)  # YAML `cpu: 1` is an int; kept as the string "1"
    if not isinstance(raw, str):
        raise ConfigError(path, f"expected a quantity string, got {type_name(raw)} {raw!r}")
    return raw


@dataclasses.dataclass(frozen=True)
class Quantity:
    """A resource quantity ("100Mi", "500m") kept as text; with `percent`, "10%" is allowed
    too (0% to 100%). Never negative."""

    percent: bool = False

    def decode(self, raw: object, path: str) -> str:
        text = _quantity_text(raw, path)
        try:
            if self.percent and text.endswith("%"):
                value = parse_percentage(text)
                if value > 100:
                    raise ValueError(f'invalid percentage "{text}": must be at most 100%')
            else:
                value = parse_quantity(text)
        except ValueError as e:
            raise ConfigError(path, str(e)) from None
        if value < Decimal(0):
            raise ConfigError(path, f'invalid quantity "{text}": must not be negative')
        return text

    def encode(self, value: Any) -> object:
        return value


@dataclasses.dataclass(frozen=True)
class Optional:
    """Another codec's value, or None when the setting is absent or null."""

    inner: Codec

    def decode(self, raw: object, path: str) -> Any:
        return None if raw is None else self.inner.decode(raw, path)

    def encode(self, value: Any) -> object:
        return None if value is None else self.inner.encode(value)


@dataclasses.dataclass(frozen=True)
class ListOf:
    """A YAML list, decoded to a tuple; items are addressed as path[i]."""

    item: Codec

    def decode(self, raw: object, path: str) -> tuple[Any, ...]:
        if not isinstance(raw, list):
            raise ConfigError(path, f"expected a list, got {type_name(raw)} {raw!r}")
        return tuple(self.item.decode(x, f"{path}[{i}]") for i, x in enumerate(raw))

    def encode(self, value: Any) -> object:
        return [self.item.encode(x) for x in value]


@dataclasses.dataclass(frozen=True)
class MapOf:
    """A YAML mapping with checked string keys, decoded to a read-only mapping; values are
    addressed as path[key]. `key_check` errors name the mapping itself."""

    value: Codec
    key_check: Check | None = None

    def decode(self, raw: object, path: str) -> Mapping[str, Any]:
        if not isinstance(raw, dict):
            raise ConfigError(path, f"expected a mapping, got {type_name(raw)} {raw!r}")
        out: dict[str, Any] = {}
        for key, item in raw.items():
            if not isinstance(key, str):
                raise ConfigError(path, f"invalid key {key!r}: expected a string")
            key = _run_check(self.key_check, key, path)
            out[key] = self.value.decode(item, f"{path}[{key}]")
        return MappingProxyType(out)

    def encode(self, value: Any) -> object:
        return {k: self.value.encode(v) for k, v in value.items()}


@dataclasses.dataclass(frozen=True)
class Struct:
    """A nested settings dataclass (its fields declared with `setting`)."""

    cls: type[Any]

    def decode(self, raw: object, path: str) -> Any:
        return self.cls(**decode_fields(self.cls, raw, path))

    def encode(self, value: Any) -> object:
        return encode_fields(value)


def spec(yaml: str, codec: Codec, *, omitzero: bool = False) -> dict[str, Any]:
    """Field metadata: the setting is read from YAML key `yaml` with `codec`. `omitzero`
    mirrors upstream defaulting of zero values: an explicit 0, "" or "0s" counts as unset and
    gets the default. A field with no default is a required key."""
    return {"yaml": yaml, "codec": codec, "omitzero": omitzero}


def frozen(default: Mapping[str, T]) -> Callable[[], Mapping[str, T]]:
    """A default_factory giving each instance its own read-only copy of `default`."""
    items = dict(default)
    return lambda: MappingProxyType(dict(items))


def _is_zero(raw: object) -> bool:
    return not isinstance(raw, bool) and (raw == "" or raw == 0)


def decode_fields(
    cls: type[Any], raw: object, path: str, *, ignore: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Decode a YAML mapping into keyword arguments for `cls`: refuse unknown keys (other than
    `ignore`), require keys without default, leave absent/null/omitted-zero keys to defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping, got {type_name(raw)} {raw!r}")
    specs = {f.metadata["yaml"]: f for f in dataclasses.fields(cls) if "yaml" in f.metadata}
    for key in raw:
        if key not in specs and key not in ignore:
            unknown_key(path, key)
    kwargs: dict[str, Any] = {}
    for key, spec in specs.items():
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        if raw.get(key) is None:
            if required:
                raise ConfigError(path, f'missing required field "{key}"')
            continue
        if spec.metadata["omitzero"] and _is_zero(raw[key]):
            continue
        value = spec.metadata["codec"].decode(raw[key], f"{path}.{key}")
        if spec.metadata["omitzero"] and not value:
            continue
        kwargs[spec.name] = value
    return kwargs


def encode_fields(obj: Any) -> dict[str, object]:
    """The YAML form of a settings dataclass: every field under its YAML key, None ones left out."""
    out: dict[str, object] = {}
    for spec in dataclasses.fields(obj):
        if "yaml" not in spec.metadata:
            continue
        value = getattr(obj, spec.name)
        if value is not None:
            out[spec.metadata["yaml"]] = spec.metadata["codec"].encode(value)
    return out
