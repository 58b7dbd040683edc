#!/usr/bin/env bash
# Undo vagrant/host/setup.sh and whatever `vagrant up` left behind, and say what was removed:
# libvirt domains named pykubelet-*, the storage pool "pykubelet" with all its volumes (box and
# node disks), the network "pykubelet", the bridge pykvbr0 and tap devices on it, the nodes'
# serial logs, and libvirtd itself when setup.sh started it. Packages and qemu.conf stay.
# Idempotent: with nothing left it says so and exits 0.
#
#   PYK_KEEP_BOX_VOLUME=1  keep the storage pool and the box volumes in it (node disks still go):
#                          the next `vagrant up` skips the box upload (~1-2 min under TCG)
set -uo pipefail

NET_NAME=${PYK_NET_NAME:-pykubelet}
BRIDGE=${PYK_BRIDGE:-pykvbr0}
POOL_NAME=${PYK_POOL_NAME:-pykubelet}
POOL_DIR=${PYK_POOL_DIR:-/var/lib/libvirt/pykubelet}
STATE_DIR=${PYK_STATE_DIR:-/run/pykubelet-vagrant}
KEEP_BOX=${PYK_KEEP_BOX_VOLUME:-0}
removed=0
say() { printf 'teardown: removed %s\n' "$*" >&2; removed=$((removed + 1)); }
log() { printf 'teardown: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "error: run as root"; exit 1; }
VIRSH=(virsh -q -c qemu:///system)
have_libvirt=0
mkdir -p "$STATE_DIR"
if command -v libvirtd >/dev/null && ! pgrep -x libvirtd >/dev/null && {
     [ -e "/etc/libvirt/qemu/networks/$NET_NAME.xml" ] || [ -e "/etc/libvirt/storage/$POOL_NAME.xml" ] ||
     compgen -G "/etc/libvirt/qemu/pykubelet-*.xml" >/dev/null; }; then
  # our definitions outlived libvirtd: start it (it is stopped again below) to remove them
  libvirtd -d && sleep 1 && pgrep -x libvirtd | head -1 > "$STATE_DIR/libvirtd.started"
  log "started libvirtd to remove what is still defined"
fi
if command -v virsh >/dev/null && pgrep -x libvirtd >/dev/null; then
  for _ in $(seq 50); do "${VIRSH[@]}" version >/dev/null 2>&1 && { have_libvirt=1; break; }; sleep 0.2; done
fi

if [ "$have_libvirt" = 1 ]; then
  # ---- domains ----
  for d in $("${VIRSH[@]}" list --all --name | grep -E '^pykubelet-' || true); do
    "${VIRSH[@]}" destroy "$d" >/dev/null 2>&1 || true
    "${VIRSH[@]}" undefine "$d" --managed-save --snapshots-metadata --nvram >/dev/null 2>&1 ||
      "${VIRSH[@]}" undefine "$d" >/dev/null 2>&1 || true
    say "domain $d"
  done
  # ---- volumes and pool ----
  if "${VIRSH[@]}" pool-info "$POOL_NAME" >/dev/null 2>&1; then
    "${VIRSH[@]}" pool-start "$POOL_NAME" >/dev/null 2>&1 || true
    "${VIRSH[@]}" pool-refresh "$POOL_NAME" >/dev/null 2>&1 || true
    for v in $("${VIRSH[@]}" vol-list "$POOL_NAME" 2>/dev/null | awk '{print $1}'); do
      if [ "$KEEP_BOX" = 1 ] && [[ $v == *_vagrant_box_image_* ]]; then continue; fi
      "${VIRSH[@]}" vol-delete --pool "$POOL_NAME" "$v" >/dev/null && say "volume $POOL_NAME/$v"
    done
    if [ "$KEEP_BOX" != 1 ]; then
      "${VIRSH[@]}" pool-destroy "$POOL_NAME" >/dev/null 2>&1 || true
      "${VIRSH[@]}" pool-delete "$POOL_NAME" >/dev/null 2>&1 || true
      "${VIRSH[@]}" pool-undefine "$POOL_NAME" >/dev/null && say "storage pool $POOL_NAME"
    fi
  fi
  # volumes of ours that landed in libvirt's default pool (a Vagrantfile without our pool)
  if "${VIRSH[@]}" pool-info default >/dev/null 2>&1; then
    for v in $("${VIRSH[@]}" vol-list default 2>/dev/null | awk '{print $1}' | grep -E '^(pykubelet-|pykubelet-debian12)' || true); do
      "${VIRSH[@]}" vol-delete --pool default "$v" >/dev/null && say "volume default/$v"
    done
  fi
  # ---- network ----
  if "${VIRSH[@]}" net-info "$NET_NAME" >/dev/null 2>&1; then
    "${VIRSH[@]}" net-destroy "$NET_NAME" >/dev/null 2>&1 || true
    "${VIRSH[@]}" net-undefine "$NET_NAME" >/dev/null && say "libvirt network $NET_NAME"
  fi
fi

# ---- links: taps on our bridge, then the bridge ----
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for t in $(ip -o link show master "$BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$t" 2>/dev/null && say "tap $t"
  done
  ip link del "$BRIDGE" && say "bridge $BRIDGE"
fi

# ---- libvirtd, when setup.sh started it ----
if [ -f "$STATE_DIR/libvirtd.started" ]; then
  pid=$(cat "$STATE_DIR/libvirtd.started")
  if [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = libvirtd ]; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    say "libvirtd (pid $pid, started by setup.sh or teardown.sh)"
  fi
  rm -f "$STATE_DIR/libvirtd.started"
elif pgrep -x libvirtd >/dev/null; then
  log "libvirtd was not started by setup.sh: left running"
fi
# dnsmasq of our network, should libvirtd have gone without stopping it
for p in $(pgrep -f "dnsmasq --conf-file=/var/lib/libvirt/dnsmasq/$NET_NAME.conf" || true); do
  kill "$p" 2>/dev/null && say "dnsmasq (pid $p)"
done
rm -f "/var/lib/libvirt/dnsmasq/$NET_NAME".* "/var/lib/libvirt/dnsmasq/$BRIDGE".*

# ---- files ----
for f in /var/log/libvirt/qemu/pykubelet-*; do
  [ -e "$f" ] && rm -f "$f" && say "log $f"
done
if [ "$KEEP_BOX" != 1 ] && [ -d "$POOL_DIR" ]; then
  rm -rf "$POOL_DIR" && say "directory $POOL_DIR"
fi
rm -rf "$STATE_DIR"

# Anything that still looks like ours is reported (not removed: it may not be ours).
left=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^(vnet[0-9]+|$BRIDGE)$" || true)
[ -n "$left" ] && log "warning: still present: $(echo "$left" | xargs)"
[ "$removed" = 0 ] && log "nothing to remove"
exit 0
