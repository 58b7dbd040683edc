"""The `pykubelet proxy` subcommand: flags and entry point of the Service proxy process.
Placeholder until the proxy lands; owned by the proxy work.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("proxy", help="run the Service proxy and node routes (kube-proxy's job)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("pykubelet proxy: not built yet", file=sys.stderr)
    return 2
