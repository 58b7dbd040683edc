"""The `pykubelet net pod NS/NAME` subcommand: the pod's network as seen from both sides.
Finds the sandbox through the node's CRI runtime, collects with pod_net, prints table or JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "pod",
        help="a pod's netns, eth0 and host veth, addresses, routes, neighbours, hostPorts",
        description="Run on the pod's node (in the node's netns). The pod is found through the "
        "node's CRI runtime by its io.kubernetes.pod.namespace/name labels, as crictl does; "
        "no apiserver access is needed.",
    )
    p.add_argument("pod", metavar="NAMESPACE/NAME")
    p.add_argument(
        "--runtime-endpoint",
        default=os.environ.get("CONTAINER_RUNTIME_ENDPOINT", DEFAULT_ENDPOINT),
        help=f"CRI endpoint (CONTAINER_RUNTIME_ENDPOINT, else {DEFAULT_ENDPOINT})",
    )
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pyroute2.netlink.exceptions import NetlinkError

    from net.views import pod_format, pod_lookup, pod_net

    ns, sep, name = str(args.pod).partition("/")
    if not sep or not ns or not name or "/" in name:
        print(f'pykubelet net pod: "{args.pod}": expected NAMESPACE/NAME', file=sys.stderr)
        return 2
    try:
        sandbox = pod_lookup.find(args.runtime_endpoint, ns, name)
        data = pod_net.collect(sandbox)
    except pod_lookup.PodNotFound as e:
        print(f"pykubelet net pod: {e}", file=sys.stderr)
        return 1
    except (OSError, NetlinkError) as e:  # the pod went away meanwhile, typically
        print(f"pykubelet net pod: {ns}/{name}: reading its network: {e}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.output == "json" else pod_format.render(data))
    return 0
