"""Pod network debug views behind `pykubelet net pod NS/NAME`: find the pod's sandbox through CRI
(pod_lookup), collect its network from both sides (pod_net), print a table or JSON (pod_format).
"""
