"""`make vagrant-test`: pykubelet nodes on real Debian VMs, joined with kubeadm (see run.py)."""
