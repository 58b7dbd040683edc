"""The Service proxy: what `pykubelet proxy` runs (kube-proxy's job). One package per mode
(iptables/, nftables/, ipvs/) behind the ProxyBackend interface (backend.py), the mode-neutral
Service/endpoint policy they share (policy.py), the sync loop and daemon; the map is in model.py's
docstring. Node routes are net/routes/.
"""
