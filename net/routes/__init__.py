"""Routes between nodes: each node reaches the other nodes' pod CIDRs (host-gw or VXLAN).
plan.py decides (pure), kernel.py applies (pyroute2), syncer.py is what `pykubelet proxy` calls."""
