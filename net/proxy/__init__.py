"""The Service proxy and node routes: what `pykubelet proxy` runs (kube-proxy's job). One package
per mode (iptables/, nftables/, ipvs/) behind the ProxyBackend interface (backend.py); the map is
in model.py's docstring.
"""
