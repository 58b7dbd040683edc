"""Flag text to YAML-shaped values, as upstream's pflag value types read them (Go booleans and
integers, comma lists, k=v maps, signal<quantity maps, taints). Pure; errors name the flag.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from typing import TypeVar

from kube.goflags import go_bool, go_int
from kube.units import parse_duration
from kubelet.config.errors import ConfigError
from kubelet.config.flagtable import Flag
from kubelet.config.labels import parse_taints

T = TypeVar("T")
__all__ = ["flag_value", "go_bool", "go_int"]


def _duration(text: str) -> str:
    parse_duration(text)  # checked here; the config codec reads it again
    return text


def _pairs(text: str, sep: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, found, value = item.partition(sep)
        if not found:
            raise ValueError(f'malformed pair "{item}": want key{sep}value')
        out.append((key.strip(), value.strip()))
    return out


def _map(values: Sequence[str], sep: str = "=") -> dict[str, str]:
    return {k: v for text in values for k, v in _pairs(text, sep)}


def _nosplit(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for text in values:
        key, found, value = text.partition("=")
        if not found:
            raise ValueError(f'malformed pair "{text}": want key=value')
        out[key.strip()] = value.strip()
    return out


def _bool_map(values: Sequence[str]) -> dict[str, bool]:
    return {k: go_bool(v) for k, v in _map(values).items()}


def _list(values: Sequence[str]) -> list[str]:
    return [item for text in values for row in csv.reader([text]) for item in row]


def _multimap(values: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for text in values:
        for key, value in _pairs(text, ":"):
            out.setdefault(key, []).append(value)
    return out


def _taints(text: str) -> list[dict[str, str]]:
    return [{"key": t.key, "value": t.value, "effect": t.effect} for t in parse_taints(text)]


def _reserved_memory(values: Sequence[str]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for text in values:
        for part in text.split(";"):
            numa, found, limits = part.partition(":")
            if not found:
                raise ValueError(f'invalid reservation "{part}": want numa:resource=quantity,...')
            out.append({"numaNode": go_int(numa.strip()), "limits": _map([limits])})
    return out


def _last(convert: Callable[[str], T]) -> Callable[[Sequence[str]], T]:
    return lambda values: convert(values[-1])


_KINDS: dict[str, Callable[[Sequence[str]], object]] = {
    "str": _last(str),
    "bool": _last(go_bool),
    "int": _last(go_int),
    "float": _last(float),
    "duration": _last(_duration),
    "list": _list,
    "map": _map,
    "map-nosplit": _nosplit,
    "langle-map": lambda values: _map(values, "<"),
    "bool-map": _bool_map,
    "colon-multimap": _multimap,
    "taints": _last(_taints),
    "reserved-memory": _reserved_memory,
}


def flag_value(flag: Flag, values: Sequence[str]) -> object:
    """The YAML-shaped value of every use of `flag` (in order): the last one wins, repeatable
    kinds accumulate. Raises ConfigError naming the flag."""
    try:
        return _KINDS[flag.kind](values)
    except ValueError as e:
        raise ConfigError(f"--{flag.name}", str(e)) from None
