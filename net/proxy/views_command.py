"""The `pykubelet net rules|explain|trace` subcommands (views over the proxy's rule model).
Placeholder until the proxy lands; owned by the proxy work.
"""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    del sub
