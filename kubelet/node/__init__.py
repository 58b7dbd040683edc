"""The Node: registration, status and conditions, allocatable, and the Lease heartbeat. Pure
building lives in status.py and allocatable.py; heartbeat.py is the one that writes to the
apiserver. Machine facts are read by kube/facts.py.
"""
