"""Go's flag value syntax, as the upstream components' command lines (pflag) read it: booleans
(strconv.ParseBool) and integers (strconv.ParseInt, base 0). Pure helpers for both agents.
"""

from __future__ import annotations

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def go_bool(text: str) -> bool:
    """strconv.ParseBool; ValueError naming the text otherwise."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'invalid boolean "{text}": want true or false')


def go_int(text: str) -> int:
    """strconv.ParseInt with base 0 (0x.., 0o.., 0b.. and decimal)."""
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text, 10)  # "010": Go reads octal, Python refuses; decimal is close enough
        except ValueError:
            raise ValueError(f'invalid integer "{text}"') from None
