"""Go duration strings and Kubernetes resource quantities and percentages, parsed and formatted.
Pure string arithmetic: raises ValueError naming the bad text; knows no setting names.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, localcontext

# Go's time.ParseDuration units, in nanoseconds. "ms" precedes "m" so that "1ms" is not 1 minute.
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, which Go prints
    "\u03bcs": 1_000,  # Greek mu, which Go also accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_MAX_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds

_BINARY_SI = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SI = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?"
)
_PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)%")


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string ("1m30s", "10s", "500ms", "-1.5h", "0") into a timedelta.

    Follows time.ParseDuration: a sign, then one or more decimal numbers each with a unit
    (ns, us/µs, ms, s, m, h); a bare "0" is the only unitless form. Precision below one
    microsecond is rounded away (timedelta's resolution)."""
    rest = text
    negative = rest[:1] == "-"
    if rest[:1] in ("-", "+"):
        rest = rest[1:]
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise ValueError(f'invalid duration "{text}"')
    total = Decimal(0)
    pos = 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if match is None:
            raise ValueError(f'invalid duration "{text}"')
        total += Decimal(match[1]) * _UNIT_NS[match[2]]
        pos = match.end()
    if total > _MAX_NS:
        raise ValueError(f'invalid duration "{text}": out of range')
    micros = int((total / 1000).to_integral_value())
    return timedelta(microseconds=-micros if negative else micros)


def _fraction(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{part:0{digits}d}".rstrip("0")


def format_duration(value: timedelta) -> str:
    """Format a timedelta as Go's Duration.String() does: "0s", "500ms", "1m30s", "1h0m0s"."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros == 0:
        return "0s"
    if micros < 1_000:
        return f"{sign}{micros}\u00b5s"
    if micros < 1_000_000:
        return f"{sign}{_fraction(micros, 1_000)}ms"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds = _fraction(rest, 1_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def parse_quantity(text: str) -> Decimal:
    """Parse a Kubernetes resource quantity into its exact value.

    Accepts a signed decimal number followed by at most one suffix: binary SI (Ki Mi Gi Ti Pi
    Ei), decimal SI (n u m k M G T P E, "m" being milli) or a decimal exponent (e3, E-2).
    "500m" is 0.5, "100Mi" is 104857600, "1e3" is 1000."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f'invalid quantity "{text}"')
    suffix = match["suffix"] or ""
    with localcontext() as ctx:
        ctx.prec = 100
        number = Decimal(match["num"])
        if suffix in _BINARY_SI:
            return number * _BINARY_SI[suffix]
        if suffix in _DECIMAL_SI:
            return number * _DECIMAL_SI[suffix]
        exponent = int(suffix[1:])
        if abs(exponent) > 1000:
            raise ValueError(f'invalid quantity "{text}": exponent out of range')
        return number.scaleb(exponent)


def parse_percentage(text: str) -> Decimal:
    """Parse "10%" or "7.5%" into its number (10, 7.5); no sign, the "%" is required."""
    match = _PERCENT.fullmatch(text)
    if match is None:
        raise ValueError(f'invalid percentage "{text}"')
    return Decimal(match[1])
