"""The Service proxy and node routes: what `pykubelet proxy` runs (kube-proxy's job)."""
