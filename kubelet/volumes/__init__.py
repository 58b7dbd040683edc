"""Pod volumes (emptyDir, hostPath, configMap, secret, downwardAPI, projected): planning,
materialising, refreshing and teardown. Nothing here starts or stops containers.
"""

from kubelet.volumes.manager import VolumeManager

__all__ = ["VolumeManager"]
