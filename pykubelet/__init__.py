"""The `pykubelet` command line: the top of the import graph. It composes the node agent
(kubelet/), the network tools (net/) and the local-cluster harness (cluster/); nothing imports it.
"""
