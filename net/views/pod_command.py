"""The `pykubelet net pod NS/NAME` subcommand: the pod's network as seen from both sides.
Placeholder until the view lands; owned by the pod networking work.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    del sub
