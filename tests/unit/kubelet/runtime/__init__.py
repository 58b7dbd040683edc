"""Unit tests for kubelet.runtime: pod dicts to CRI configs and labels, no runtime needed."""
