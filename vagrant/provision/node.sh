#!/usr/bin/env bash
# Provision one pykubelet VM node (run as root by Vagrant's shell provisioner, again on every
# `vagrant provision`). Vagrant's file provisioners upload into /tmp/pykubelet-upload:
#   *.whl      pykubelet's own wheel (PYK_WHEEL): installed into /opt/pykubelet/venv, whose
#              dependencies the box already has (offline: nothing is fetched)
#   systemd/   vagrant/systemd/: units installed into /etc/systemd/system
#   kubeadm    (PYK_KUBEADM): installed as /usr/bin/kubeadm
# On a box without the venv (VirtualBox with a stock Debian box) it installs the packages and
# the venv first, online.
set -euo pipefail
UP=/tmp/pykubelet-upload
VENV=/opt/pykubelet/venv
say() { printf 'provision[%s]: %s\n' "${PYK_NODE_NAME:-$(hostname)}" "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "no venv in this box: installing packages and dependencies online"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends iproute2 iptables ipset ipvsadm conntrack kmod \
    containerd runc python3 python3-venv socat ethtool curl >/dev/null
  python3 -m venv "$VENV"
fi

shopt -s nullglob
wheels=("$UP"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  if [ -f /etc/pykubelet-box ] || [ -d /opt/pykubelet/venv/lib/python3.11/site-packages/grpc ]; then
    # dependencies are in the box: replace pykubelet only, then check none is missing (by
    # name, with importlib.metadata: `pip check` costs another ~20 s of pip start-up under TCG)
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-index --no-deps \
      --force-reinstall "${wheels[@]}"
    "$VENV/bin/python" - <<'PY' ||
import importlib.metadata as md, re, sys
missing = []
for req in md.requires("pykubelet") or []:
    if "extra ==" in req:
        continue
    try:
        md.distribution(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    except md.PackageNotFoundError:
        missing.append(req)
if missing:
    sys.exit("missing: " + ", ".join(missing))
PY
      { say "error: the wheel needs dependencies the box lacks: rebuild the box (make vagrant-box)"; exit 1; }
  else
    "$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall "${wheels[@]}"
  fi
  say "installed $(basename "${wheels[0]}") into $VENV"
else
  say "no pykubelet wheel uploaded (set PYK_WHEEL): venv has the dependencies only"
fi

# Commands on PATH where systemd units and kubeadm expect them.
for cmd in pykubelet kubelet kube-proxy; do
  if [ -x "$VENV/bin/$cmd" ]; then
    ln -sfn "$VENV/bin/$cmd" "/usr/bin/$cmd"
    say "/usr/bin/$cmd -> $VENV/bin/$cmd"
  elif [ -L "/usr/bin/$cmd" ]; then
    rm -f "/usr/bin/$cmd"
  fi
done

if [ -f "$UP/kubeadm" ]; then
  install -m 0755 "$UP/kubeadm" /usr/bin/kubeadm
  say "installed /usr/bin/kubeadm ($(/usr/bin/kubeadm version -o short 2>/dev/null || echo '?'))"
fi

if [ -d "$UP/systemd" ]; then
  n=0
  for u in "$UP"/systemd/*.{service,socket,target,slice,timer,path,mount}; do
    install -m 0644 "$u" /etc/systemd/system/; n=$((n + 1))
  done
  for d in "$UP"/systemd/*.d; do
    [ -d "$d" ] || continue
    install -d "/etc/systemd/system/$(basename "$d")"
    install -m 0644 "$d"/*.conf "/etc/systemd/system/$(basename "$d")/"
  done
  systemctl daemon-reload
  if [ -f "$UP/systemd/enable" ]; then
    # shellcheck disable=SC2046
    systemctl enable $(sed -e 's/#.*//' "$UP/systemd/enable" | xargs) 
  fi
  say "installed $n systemd unit(s) from vagrant/systemd/"
fi

rm -rf "$UP"
say "node ip ${PYK_NODE_IP:-?}; $(python3 --version); cgroup $(stat -fc %T /sys/fs/cgroup)"
