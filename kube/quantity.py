"""Kubernetes resource quantities ("500m", "1.5Gi", "129e6") as exact numbers, and the CPU and
memory conversions upstream uses. Pure; the one parser every pykubelet module shares.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|([a-zA-Z]*))$")
_SUFFIXES: dict[str, Fraction] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_MAX_EXPONENT = 30  # beyond any real resource; keeps "1e999999999" from eating the CPU


class QuantityError(ValueError):
    """A resource quantity string that does not parse (or is negative)."""


def parse_quantity(value: object) -> Fraction:
    """A Kubernetes quantity ("500m", "1.5Gi", "129e6", 2) as an exact non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise QuantityError(f"invalid quantity {value!r}")
        return Fraction(repr(value))  # repr: 0.1 means 1/10, not its binary approximation
    m = _QUANTITY.match(value.strip())
    if m is None or (m.group(3) is not None and m.group(3) not in _SUFFIXES):
        raise QuantityError(f'invalid quantity "{value}"')
    number = Fraction(m.group(1))
    if number < 0:
        raise QuantityError(f'negative quantity "{value}"')
    if m.group(2):
        exponent = int(m.group(2)[1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(f'quantity out of range "{value}"')
        return number * Fraction(10) ** exponent
    return number * _SUFFIXES[m.group(3) or ""]


def parse_cpu(value: object) -> int:
    """CPU quantity in millicores, rounded up as upstream's MilliValue() does ("0.5" -> 500)."""
    return math.ceil(parse_quantity(value) * 1000)


def parse_memory(value: object) -> int:
    """Memory quantity in bytes, rounded up as upstream's Value() does ("64Mi" -> 67108864)."""
    return math.ceil(parse_quantity(value))
