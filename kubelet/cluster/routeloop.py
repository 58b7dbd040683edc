"""A stand-in for `pykubelet proxy --node-routes` on simulated nodes: lists Nodes with the
kube-proxy identity every few seconds and hands them to RouteSyncer. Runs in a node's netns."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

log = logging.getLogger("pykubelet.routeloop")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="routeloop", description=__doc__)
    p.add_argument("--dir", type=Path, required=True, help="cluster directory (cluster.json)")
    p.add_argument("--node", required=True, help="this node's name")
    p.add_argument("--mode", default="host-gw", help="host-gw or vxlan")
    p.add_argument("--interval", type=float, default=2.0)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from kubelet.cluster.up import api, load_record
    from net.routes.syncer import RouteSyncer

    spec = load_record(args.dir)
    if spec is None:
        print(f"routeloop: no cluster recorded in {args.dir}", file=sys.stderr)
        return 2
    syncer = RouteSyncer(args.node, mode=args.mode)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            try:
                status, body = api(spec, "/api/v1/nodes", who="kube-proxy")
                if status == 200:
                    syncer.sync(json.loads(body).get("items", []))
                else:
                    log.warning("listing Nodes: HTTP %d", status)
            except Exception as e:  # logged and retried: this loop must not die
                log.warning("route sync failed: %s", e)
            stop.wait(args.interval)
    finally:
        syncer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
