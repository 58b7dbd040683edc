"""Unit tests of kubelet/volumes: pure planners, and executors on temporary directories.
No root, no daemons, no mounts.
"""
