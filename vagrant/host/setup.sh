#!/usr/bin/env bash
# Prepare this host to run pykubelet's VM nodes with vagrant-libvirt, offline.
#
# - installs vagrant, vagrant-libvirt, libvirt (sysv flavour: no systemd on this host), QEMU and
#   debootstrap from Debian with --no-install-recommends, refusing any plan that would touch the
#   host's systemd packages;
# - writes the qemu.conf settings this host needs (no cgroup controllers, stdio to files, no
#   security driver, QEMU as root) and keeps libvirt's NAT "default" network from autostarting;
# - starts libvirtd by hand (`libvirtd -d`) when it is not running, and remembers that it did so
#   that teardown.sh stops it again;
# - defines and starts the libvirt network "pykubelet": bridge pykvbr0, 198.18.1.254/24,
#   <forward mode='open'/> (libvirt adds no firewall rules, the host routes nothing for it), DHCP
#   only for the nodes' fixed MACs, no router, no DNS; and the storage pool "pykubelet".
#
# Idempotent: a second run changes nothing and says so. Undo with vagrant/host/teardown.sh.
set -euo pipefail

NET_NAME=${PYK_NET_NAME:-pykubelet}
BRIDGE=${PYK_BRIDGE:-pykvbr0}
SUBNET=198.18.1
HOST_IP=$SUBNET.254
POOL_NAME=${PYK_POOL_NAME:-pykubelet}
POOL_DIR=${PYK_POOL_DIR:-/var/lib/libvirt/pykubelet}
STATE_DIR=${PYK_STATE_DIR:-/run/pykubelet-vagrant}

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
mkdir -p "$STATE_DIR"

# ---- packages -----------------------------------------------------------------------------
PKGS=(vagrant vagrant-libvirt libvirt-daemon libvirt-daemon-system libvirt-daemon-system-sysv
      libvirt-clients qemu-system-x86 qemu-utils debootstrap dnsmasq-base zstd e2fsprogs)
missing=()
for p in "${PKGS[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -s --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq
  fi
  plan=$(apt-get install -s --no-install-recommends "${missing[@]}" | grep -E '^(Inst|Remv) ' || true)
  # Never upgrade or remove the host's systemd/udev packages (the host runs without systemd as
  # PID 1 and its systemd packages belong to the image).
  touched=$(printf '%s\n' "$plan" | awk '{print $1, $2}' |
            grep -E ' (systemd|systemd-.*|libsystemd.*|udev|libudev.*)$' || true)
  if [ -n "$touched" ]; then
    die "installing would change systemd packages: $(echo "$touched" | tr '\n' ' ')"
  fi
  # No service starts during the install (libvirtd would autostart the NAT default network).
  tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    tmp_policy=/usr/sbin/policy-rc.d
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE_DIR/apt.log" 2>&1 ||
    { [ -n "$tmp_policy" ] && rm -f "$tmp_policy"; tail -20 "$STATE_DIR/apt.log"; die "apt-get install failed"; }
  [ -n "$tmp_policy" ] && rm -f "$tmp_policy"
else
  log "packages already installed"
fi

# ---- libvirt configuration ------------------------------------------------------------------
QEMU_CONF=/etc/libvirt/qemu.conf
conf_changed=0
set_conf() {  # key value: set `key = value` once in qemu.conf (replacing an earlier setting)
  local key=$1 value=$2
  if grep -qE "^${key} = ${value//[/\\[}\$" "$QEMU_CONF"; then return; fi
  sed -i -E "/^${key} *=/d" "$QEMU_CONF"
  printf '%s = %s\n' "$key" "$value" >> "$QEMU_CONF"
  conf_changed=1
  log "qemu.conf: $key = $value"
}
set_conf cgroup_controllers '[ ]'
set_conf stdio_handler '"file"'
set_conf security_driver '"none"'
# QEMU runs as root: the box's kernel and initrd live under root's VAGRANT_HOME (~/.cache/...),
# which libvirt's default libvirt-qemu user cannot reach.
set_conf user '"root"'
set_conf group '"root"'

# libvirt's NAT network would add iptables rules and virbr0: never autostart it.
if [ -e /etc/libvirt/qemu/networks/autostart/default.xml ]; then
  rm -f /etc/libvirt/qemu/networks/autostart/default.xml
  log "disabled autostart of libvirt's NAT network 'default'"
fi

# ---- libvirtd -------------------------------------------------------------------------------
libvirtd_pid() { pgrep -x libvirtd | head -1; }
if [ -n "$(libvirtd_pid)" ] && [ "$conf_changed" = 1 ] && [ -e "$STATE_DIR/libvirtd.started" ]; then
  log "restarting our libvirtd for the new qemu.conf"
  kill "$(libvirtd_pid)"; for _ in $(seq 50); do [ -z "$(libvirtd_pid)" ] && break; sleep 0.2; done
fi
if [ -z "$(libvirtd_pid)" ]; then
  mkdir -p /var/run/libvirt /var/lib/libvirt/images /var/log/libvirt/qemu
  libvirtd -d
  for _ in $(seq 100); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
  virsh -c qemu:///system version >/dev/null 2>&1 || die "libvirtd did not answer"
  echo "$(libvirtd_pid)" > "$STATE_DIR/libvirtd.started"
  log "started libvirtd (pid $(cat "$STATE_DIR/libvirtd.started"))"
else
  [ "$conf_changed" = 1 ] && log "warning: libvirtd was already running (not ours): restart it for qemu.conf to apply"
  log "libvirtd already running (pid $(libvirtd_pid))"
fi
VIRSH=(virsh -q -c qemu:///system)

# ---- the pykubelet network ------------------------------------------------------------------
# DHCP hands node MAC 52:54:00:c6:12:NN (NN hex) the address 198.18.1.NN, for .11-.70: the
# Vagrantfile gives worker-i the MAC of 198.18.1.(10+i). Only those MACs get an address (no
# range), and no router or DNS is announced: the guests reach nothing beyond 198.18.1.0/24.
# (vagrant-libvirt matches the network by address and netmask, hence netmask=, not prefix=.)
net_xml() {
  echo "<network>"
  echo "  <name>$NET_NAME</name>"
  echo "  <forward mode='open'/>"
  echo "  <bridge name='$BRIDGE' stp='off' delay='0'/>"
  echo "  <dns enable='no'/>"
  echo "  <ip address='$HOST_IP' netmask='255.255.255.0'>"
  echo "    <dhcp>"
  for n in $(seq 11 70); do
    printf "      <host mac='52:54:00:c6:12:%02x' ip='%s.%d'/>\n" "$n" "$SUBNET" "$n"
  done
  echo "    </dhcp>"
  echo "  </ip>"
  echo "</network>"
}
if "${VIRSH[@]}" net-info "$NET_NAME" >/dev/null 2>&1; then
  have=$("${VIRSH[@]}" net-dumpxml --inactive "$NET_NAME")
  if ! grep -F "<host mac='52:54:00:c6:12:46' ip='$SUBNET.70'/>" <<<"$have" >/dev/null ||
     ! grep -F "netmask='255.255.255.0'" <<<"$have" >/dev/null ||
     ! grep -F "<forward mode='open'/>" <<<"$have" >/dev/null; then
    if "${VIRSH[@]}" list --name | grep -E '^pykubelet-' >/dev/null; then
      die "libvirt network $NET_NAME is out of date but VMs use it: run vagrant/host/teardown.sh"
    fi
    log "redefining out-of-date libvirt network $NET_NAME"
    "${VIRSH[@]}" net-destroy "$NET_NAME" >/dev/null 2>&1 || true
    "${VIRSH[@]}" net-undefine "$NET_NAME" >/dev/null
  fi
fi
if ! "${VIRSH[@]}" net-info "$NET_NAME" >/dev/null 2>&1; then
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    die "a device $BRIDGE exists but libvirt has no network $NET_NAME: run vagrant/host/teardown.sh"
  fi
  xml=$(mktemp)
  net_xml > "$xml"
  "${VIRSH[@]}" net-define "$xml" >/dev/null
  rm -f "$xml"
  log "defined libvirt network $NET_NAME (bridge $BRIDGE, $HOST_IP/24, forward open, DHCP for fixed MACs)"
fi
if ! "${VIRSH[@]}" net-info "$NET_NAME" | grep -E '^Active: +yes' >/dev/null; then
  "${VIRSH[@]}" net-start "$NET_NAME" >/dev/null
  log "started libvirt network $NET_NAME"
else
  log "libvirt network $NET_NAME already active"
fi

# ---- the pykubelet storage pool (box and node disks; teardown.sh deletes it whole) ------------
if ! "${VIRSH[@]}" pool-info "$POOL_NAME" >/dev/null 2>&1; then
  "${VIRSH[@]}" pool-define-as "$POOL_NAME" dir --target "$POOL_DIR" >/dev/null
  "${VIRSH[@]}" pool-build "$POOL_NAME" >/dev/null
  log "defined libvirt storage pool $POOL_NAME in $POOL_DIR"
fi
if ! "${VIRSH[@]}" pool-info "$POOL_NAME" | grep -E '^State: +running' >/dev/null; then
  "${VIRSH[@]}" pool-start "$POOL_NAME" >/dev/null
  log "started libvirt storage pool $POOL_NAME"
fi
ip -br addr show "$BRIDGE" >&2
log "ready"
