#!/usr/bin/env bash
# Run vagrant on pykubelet's VM nodes with the project's settings, from anywhere:
#   bash vagrant/vagrant.sh status
#   bash vagrant/vagrant.sh ssh worker-1 -c 'systemctl status containerd'
#   bash vagrant/vagrant.sh upload ./file /tmp/file worker-2
# VAGRANT_HOME stays under the cache (boxes, keys), not in ~/.vagrant.d; no network calls to
# HashiCorp (checkpoint, box updates).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${PYK_VAGRANT_CACHE:-$HOME/.cache/pykubelet/vagrant}
export VAGRANT_CWD=$HERE
export VAGRANT_HOME=${VAGRANT_HOME:-$CACHE/home}
export VAGRANT_DEFAULT_PROVIDER=${VAGRANT_DEFAULT_PROVIDER:-libvirt}
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1
exec vagrant "$@"
