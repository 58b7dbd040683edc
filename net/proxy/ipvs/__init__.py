"""IPVS mode of the Service proxy: the planner (virtual/real servers, addresses, ipsets), their
netlink encoding, and the backend that programs them with its fixed iptables rules.
"""
