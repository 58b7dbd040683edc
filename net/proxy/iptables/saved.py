"""Reads `iptables-save` output: the chains that exist in a table and which jumps from the
builtin chains are already there (so a full restore adds only the missing ones). Pure.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})

JumpKey = tuple[str, str, str]
"""(builtin chain, target chain, comment): what identifies one of our builtin jumps."""


def jump_key(chain: str, rule: str) -> JumpKey | None:
    """The key of the rule `rule` (text after `-A CHAIN`) appended to `chain`; None when it
    jumps nowhere or cannot be split."""
    try:
        words = shlex.split(rule)
    except ValueError:
        return None
    target = comment = ""
    for i, word in enumerate(words[:-1]):
        if word in ("-j", "--jump", "-g", "--goto"):
            target = words[i + 1]
        elif word == "--comment":
            comment = words[i + 1]
    return (chain, target, comment) if target else None


@dataclass(frozen=True)
class Saved:
    """One table as iptables-save printed it."""

    chains: frozenset[str]
    jumps: frozenset[JumpKey]
    """Keys of the rules in builtin chains."""


def parse_saved(text: str) -> Saved:
    chains: set[str] = set()
    jumps: set[JumpKey] = set()
    for line in text.splitlines():
        if line.startswith(":"):
            name = line[1:].split(maxsplit=1)
            if name:
                chains.add(name[0])
        elif line.startswith("-A "):
            parts = line.split(maxsplit=2)
            if len(parts) == 3 and parts[1] in BUILTIN_CHAINS:
                key = jump_key(parts[1], parts[2])
                if key is not None:
                    jumps.add(key)
    return Saved(frozenset(chains), frozenset(jumps))
