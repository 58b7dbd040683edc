"""Registers the network subcommands of `pykubelet`: `proxy` and the `net ...` debug views.
Each command lives in its own module; this file only wires them into the parser.
"""

from __future__ import annotations

import argparse

from net.proxy import command as proxy_command
from net.proxy import views_command
from net.views import pod_command


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `proxy` and `net` (with its own subcommands) to the top-level subparsers."""
    proxy_command.add_parser(sub)
    net = sub.add_parser("net", help="networking debug views")
    net_sub = net.add_subparsers(dest="net_command", required=True)
    pod_command.add_parser(net_sub)
    views_command.add_parsers(net_sub)
