"""The `pykubelet` command: parses the command line and hands over to one subcommand.
Holds no logic of its own beyond argument parsing and exit codes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from cluster.process import ComponentFailed
from cluster.spec import DEFAULT_CACHE, DEFAULT_DIR, ClusterSpec, Ports
from kube import __version__, facts
from kubelet.config import add_run_flags


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pykubelet", description="A Kubernetes node agent in Python.")
    p.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="log verbosity")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version")
    up = sub.add_parser("up", help="bring up a real local cluster on this machine")
    up.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cluster directory")
    up.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="build cache directory")
    up.add_argument("--no-build", action="store_true", help="do not build missing binaries")
    defaults = Ports()
    for name, default in dataclasses.asdict(defaults).items():
        flag = "--" + name.replace("_", "-") + "-port"
        up.add_argument(flag, dest=f"port_{name}", type=int, default=default, metavar="PORT")
    up.add_argument("--bridge", default="pykbr0", help="bridge of the provisional pod network")
    up.add_argument(
        "--cluster-cidr",
        default=ClusterSpec.cluster_cidr,
        help="pod network of the cluster (nodes get /24s of it)",
    )
    up.add_argument("--node-name", default=facts.hostname(), help="name of the node agent")
    up.add_argument(
        "--nodes",
        type=int,
        default=0,
        metavar="N",
        help="simulate N nodes, a netns each with its own containerd, agent and routes "
        "(named NODE-NAME-1..N); 0 runs one node agent on this host",
    )
    up.add_argument(
        "--node-subnet",
        default="198.18.0.0/24",
        help="with --nodes: the nodes' L2 segment (nodes .1..N, this host .254)",
    )
    up.add_argument(
        "--netns-prefix", default="pyk", help="with --nodes: prefix of the netns and links made"
    )
    up.add_argument(
        "--route-mode",
        choices=("host-gw", "vxlan"),
        default="host-gw",
        help="with --nodes: how nodes route to each other's pod CIDRs",
    )
    up.add_argument(
        "--proxy-mode",
        choices=("iptables", "nftables"),
        default="iptables",
        help="with --nodes: how each node's `pykubelet proxy` programs Services",
    )
    up.add_argument(
        "--no-addons",
        action="store_true",
        help="skip cluster DNS (CoreDNS) and, for a node on this host, its Service proxy",
    )
    up.add_argument(
        "--advertise-address",
        default="",
        metavar="IP",
        help="an address of this host where other machines (VMs on a bridge) reach the "
        "apiserver: it then listens on every address and its certificate names this one",
    )
    up.add_argument(
        "--joinable",
        action="store_true",
        help="let nodes join with `kubeadm join` (bootstrap token, cluster-info, kubeadm's "
        "ConfigMaps and RBAC; anonymous requests may read cluster-info); prints the command",
    )
    run = sub.add_parser("run", help="run the node agent")
    add_run_flags(run)
    down = sub.add_parser("down", help="stop the local cluster and remove what `up` made")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cluster directory")
    from net.cli import add_parsers as add_net_parsers

    add_net_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbosity >= 6 else logging.WARNING)
    logging.basicConfig(
        level=logging.DEBUG if args.verbosity >= 4 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "version":
        print(f"pykubelet {__version__}")
        return 0
    if args.command == "run":
        return _run(args)
    func = getattr(args, "func", None)
    if func is not None:
        code: int = func(args)
        return code
    from cluster import joining
    from cluster import up as cluster

    try:
        if args.command == "up":
            binaries = cluster.find_binaries(args.cache, build=not args.no_build)
            ports = Ports(**{n: getattr(args, f"port_{n}") for n in dataclasses.asdict(Ports())})
            node_names = (
                tuple(f"{args.node_name}-{i}" for i in range(1, args.nodes + 1))
                if args.nodes > 0
                else (args.node_name,)
            )
            spec = cluster.make_spec(
                args.dir.resolve(),
                binaries,
                ports=ports,
                bridge=args.bridge,
                node_names=node_names,
                cluster_cidr=args.cluster_cidr,
                node_subnet=args.node_subnet if args.nodes > 0 else "",
                netns_prefix=args.netns_prefix,
                route_mode=args.route_mode,
                proxy_mode=args.proxy_mode,
                advertise_address=args.advertise_address,
                joinable=args.joinable,
            )
            cluster.up(spec, with_addons=not args.no_addons)
            print(f"export KUBECONFIG={spec.admin_kubeconfig}")
            if spec.joinable:
                print(joining.join_command_path(spec).read_text().strip())
        elif args.command == "down":
            cluster.down(args.dir.resolve())
    except ComponentFailed as e:
        print(f"pykubelet {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from kubelet.command import run

    return run(args, prog="pykubelet run", config_exit=2)


if __name__ == "__main__":
    sys.exit(main())
