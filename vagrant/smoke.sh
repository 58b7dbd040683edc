#!/usr/bin/env bash
# Smoke test of pykubelet's VM nodes, end to end and offline: prepare the host, build (or reuse)
# the box, `vagrant up` PYK_WORKERS (default 2) Debian 12 nodes, check them, destroy them, undo
# the host setup, and check the host is left as it was. Prints a table of timings.
#
#   bash vagrant/smoke.sh
#
#   PYK_WHEEL=path   install this pykubelet wheel (default: build one with pip wheel --no-deps;
#                    PYK_WHEEL=none installs none)
#   PYK_KUBEADM=path also install this kubeadm binary as /usr/bin/kubeadm and check it runs
#   PYK_SMOKE_KEEP=1 leave the nodes and the host setup up for inspection (no destroy/teardown)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${PYK_VAGRANT_CACHE:-$HOME/.cache/pykubelet/vagrant}
export PYK_WORKERS=${PYK_WORKERS:-2}
export VAGRANT_CWD=$HERE VAGRANT_HOME=${VAGRANT_HOME:-$CACHE/home}
export VAGRANT_DEFAULT_PROVIDER=libvirt VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1
LOGDIR=$(mktemp -d /tmp/pykubelet-smoke.XXXX)
NODES=(); for i in $(seq 1 "$PYK_WORKERS"); do NODES+=("worker-$i"); done
ip_of() { echo "198.18.1.$((10 + ${1#worker-}))"; }

declare -A T=()        # step -> seconds
STEPS=()
failures=()
step() {  # step NAME CMD...: run CMD, time it, log to $LOGDIR/NAME.log
  local name=$1; shift
  local t0=$SECONDS rc=0
  printf '\n== %s\n' "$name" >&2
  set +e; "$@" 2>&1 | tee "$LOGDIR/$name.log" >&2; rc=${PIPESTATUS[0]}; set -e
  T[$name]=$((SECONDS - t0)); STEPS+=("$name")
  return $rc
}
check() {  # check DESCRIPTION CMD...: record pass/fail, go on
  local what=$1; shift
  if "$@" >>"$LOGDIR/checks.log" 2>&1; then printf 'ok   %s\n' "$what" >&2
  else printf 'FAIL %s\n' "$what" >&2; failures+=("$what"); fi
}
vssh() { local n=$1; shift; vagrant ssh "$n" --no-tty -c "$*" -- -o LogLevel=ERROR; }

# ---- the host's state before, to compare with after ----------------------------------------
ours_on_host() {  # everything of ours a host can show, one line each
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(pykvbr0|vnet[0-9]+)$' | sed 's/^/link /' || true
  { iptables-save 2>/dev/null; iptables-legacy-save 2>/dev/null; } |
    grep -E 'LIBVIRT|pykvbr0|198\.18\.1\.' | sed 's/^/iptables /' || true
  pgrep -a -f 'qemu-system.*pykubelet-' | sed 's/^/process /' || true
  if pgrep -x libvirtd >/dev/null; then
    virsh -q -c qemu:///system list --all --name 2>/dev/null | grep -E '^pykubelet-' | sed 's/^/domain /' || true
    virsh -q -c qemu:///system net-list --all --name 2>/dev/null | grep -Ex 'pykubelet' | sed 's/^/network /' || true
    virsh -q -c qemu:///system pool-list --all --name 2>/dev/null | grep -Ex 'pykubelet' | sed 's/^/pool /' || true
  fi
  [ -d /var/lib/libvirt/pykubelet ] && echo "dir /var/lib/libvirt/pykubelet"
  return 0
}
libvirtd_before=$(pgrep -x libvirtd >/dev/null && echo running || echo stopped)
ours_on_host | grep -v '^iptables ' > "$LOGDIR/before.txt" || true
{ iptables-save 2>/dev/null; iptables-legacy-save 2>/dev/null; } |
  grep -E 'LIBVIRT|pykvbr0|198\.18\.1\.' > "$LOGDIR/iptables.before" || true

up_done=0
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${PYK_SMOKE_KEEP:-0}" = 1 ]; then
    echo "PYK_SMOKE_KEEP=1: nodes and host setup left up; undo: bash vagrant/vagrant.sh destroy -f; bash vagrant/host/teardown.sh" >&2
  else
    if [ "$up_done" = 1 ] || [ -d "$HERE/.vagrant/machines" ]; then
      step destroy vagrant destroy -f || failures+=("vagrant destroy")
    fi
    step teardown bash "$HERE/host/teardown.sh" || failures+=("teardown")
    # the host as before: nothing of ours left, libvirtd as it was
    ours_on_host > "$LOGDIR/after.txt"
    if [ -s "$LOGDIR/after.txt" ]; then
      echo "left on the host:" >&2; sed 's/^/  /' "$LOGDIR/after.txt" >&2
      failures+=("host left clean")
    else
      echo "ok   host left clean (no pykvbr0, vnet taps, domains, networks, pools, libvirt iptables rules)" >&2
    fi
    if [ "$libvirtd_before" = stopped ] && pgrep -x libvirtd >/dev/null; then
      failures+=("libvirtd stopped again")
    fi
  fi
  printf '\n%-28s %8s\n' "step" "seconds" >&2
  for s in "${STEPS[@]}"; do printf '%-28s %8s\n' "$s" "${T[$s]}" >&2; done
  [ -n "${BOOT_TO_SSH:-}" ] && printf '%-28s %8s\n' "(boot to SSH, per node)" "$BOOT_TO_SSH" >&2
  [ -n "${BOX_UPLOAD:-}" ] && printf '%-28s %8s\n' "(box upload to pool)" "$BOX_UPLOAD" >&2
  echo "logs: $LOGDIR" >&2
  if [ ${#failures[@]} -gt 0 ] || [ "$rc" != 0 ]; then
    printf 'smoke: FAILED (exit %s): %s\n' "$rc" "${failures[*]:-}" >&2
    exit 1
  fi
  echo "smoke: passed" >&2
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---- host, box, wheel -----------------------------------------------------------------------
step host-setup bash "$HERE/host/setup.sh"
step box-build bash "$HERE/box/build.sh"
if [ -z "${PYK_WHEEL:-}" ]; then
  mkdir -p "$LOGDIR/wheel"
  if step wheel python3 -m pip wheel -q --no-deps --disable-pip-version-check -w "$LOGDIR/wheel" "$REPO"; then
    PYK_WHEEL=$(ls "$LOGDIR"/wheel/*.whl | head -1)
  else
    echo "warning: building pykubelet's wheel failed: nodes get no pykubelet" >&2
    PYK_WHEEL=none
  fi
fi
[ "$PYK_WHEEL" = none ] && PYK_WHEEL=""
export PYK_WHEEL

# ---- up -------------------------------------------------------------------------------------
stamp() { while IFS= read -r l; do printf '%5d %s\n' "$((SECONDS - UP0))" "$l"; done; }
up() { vagrant up --provider=libvirt 2>&1 | stamp; return "${PIPESTATUS[0]}"; }
since() {  # since NODE FROM TO: seconds between the first log lines (of NODE, "" any) matching FROM and TO
  awk -v n="${1:+$1: }" -v a="$2" -v b="$3" '(n == "" || index($0, n)) && index($0, a) && !ta {ta=$1}
    (n == "" || index($0, n)) && index($0, b) && !tb {tb=$1} END {if (ta != "" && tb != "") print tb - ta}' \
    "$LOGDIR/vagrant-up.log"
}
UP0=$SECONDS
up_done=1
step vagrant-up up
BOOT_TO_SSH=""; for n in "${NODES[@]}"; do BOOT_TO_SSH+="$(since "$n" "Starting domain" "Machine booted and ready") "; done
BOX_UPLOAD=$(since "" "Uploading base box image" "Creating image (snapshot")

# ---- checks ---------------------------------------------------------------------------------
W1=${NODES[0]}
step node-facts vssh "$W1" 'systemctl is-system-running; cat /sys/fs/cgroup/cgroup.controllers;
  lsmod | grep ip_vs; ip -br a; ip r; hostname; getent hosts $(hostname); cat /etc/machine-id; cat /etc/pykubelet-box;
  /usr/sbin/sysctl net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; python3 --version;
  /opt/pykubelet/venv/bin/python -c "import grpc, pyroute2, yaml; print(\"venv ok\")";
  sudo ctr version | grep -m1 Version; sudo containerd config dump | grep -m1 SystemdCgroup; systemd-analyze || true; systemd-analyze blame --no-pager | head -8; ls -l /usr/bin/pykubelet /usr/bin/kubelet 2>&1 || true'
facts=$LOGDIR/node-facts.log
check "$W1 systemd is running (no failed units)" grep -Ex 'running' "$facts"
check "$W1 cgroup v2 with cpu, memory, pids" grep -E '^cpuset cpu io memory.* pids' "$facts"
check "$W1 ip_vs loaded" grep -E '^ip_vs ' "$facts"
check "$W1 eth0 has $(ip_of "$W1")" grep -E "^eth0 +UP +$(ip_of "$W1")/24" "$facts"
check "$W1 default route only into the dummy pykdefault" grep -E '^default dev pykdefault' "$facts"
check "$W1 hostname is $W1" grep -Ex "$W1" "$facts"
check "$W1 hostname resolves (/etc/hosts)" grep -E "^127\.0\.1\.1 +$W1\$" "$facts"
check "$W1 forwarding and bridge-nf-call-iptables on" grep -E 'bridge-nf-call-iptables = 1' "$facts"
check "$W1 /etc/pykubelet-box names containerd's cgroup driver" bash -c "grep -q 'SystemdCgroup = true' '$facts' && grep -qx cgroup_driver=systemd '$facts' || { grep -q 'SystemdCgroup = false' '$facts' && grep -qx cgroup_driver=cgroupfs '$facts'; }"
check "$W1 venv with pykubelet's dependencies" grep -Ex 'venv ok' "$facts"
if [ -n "$PYK_WHEEL" ]; then
  check "$W1 /usr/bin/pykubelet from the wheel" grep -E '/usr/bin/pykubelet -> /opt/pykubelet/venv/bin/pykubelet' "$facts"
fi
if [ -n "${PYK_KUBEADM:-}" ]; then
  step kubeadm vssh "$W1" '/usr/bin/kubeadm version -o short' || true
  check "$W1 /usr/bin/kubeadm runs" grep -E '^v[0-9]+\.' "$LOGDIR/kubeadm.log"
fi
if [ ${#NODES[@]} -ge 2 ]; then
  W2=${NODES[1]}
  step ping vssh "$W1" "ping -c 3 -W 3 $(ip_of "$W2")" || true
  check "$W1 pings $W2 over $(ip_of "$W2")" grep -E ' 0% packet loss' "$LOGDIR/ping.log"
  step machine-ids bash -c "for n in ${NODES[*]}; do vagrant ssh \$n --no-tty -c 'cat /etc/machine-id' -- -o LogLevel=ERROR; done" || true
  check "nodes have distinct machine-ids" bash -c "[ \$(grep -cE '^[0-9a-f]{32}' '$LOGDIR/machine-ids.log') = ${#NODES[@]} ] && [ \$(sort -u '$LOGDIR/machine-ids.log' | grep -cE '^[0-9a-f]{32}') = ${#NODES[@]} ]"
fi
for n in "${NODES[@]}"; do
  check "host reaches $n over TCP ($(ip_of "$n"):22)" \
    timeout 10 bash -c "exec 3<>/dev/tcp/$(ip_of "$n")/22; head -c 8 <&3 | grep -q '^SSH-2.0'"
done
