"""pykubelet's networking: the CNI plugin (cni/) and its agent-side service (IPAM, links, host
iptables rules, the plugin socket), the Service proxy (proxy/), nf_tables over netlink (nft/),
node routes (routes/) and the pod network debug views (views/). Importing this package must stay
free of side effects and of third-party imports (the plugin).
"""
