#!/usr/bin/env bash
# Installs what pykubelet's harness and tests need on a fresh Debian 12 machine: apt packages, a
# Python venv with the project, and the Go-built control plane. Reuses whatever is already there.
# `install-deps.sh venv` makes only the venv (what `make check` needs: no root, no apt, no Go).
set -euo pipefail
only=${1:-all}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
APT_PACKAGES=(containerd runc containernetworking-plugins etcd-server iptables ipset conntrack
  iproute2 umoci skopeo busybox-static gcc libc6-dev procps util-linux dbus-daemon nftables
  musl-tools dpkg-dev)

missing=()
[ "$only" = venv ] && APT_PACKAGES=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[install] apt: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv="$top/.venv"
stamp="$venv/.installed-$(sha256sum "$top/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "[install] python venv in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "$top[dev]"
  rm -f "$venv"/.installed-*; touch "$stamp"
fi

[ "$only" = venv ] && exit 0
bash "$here/gobuild/build.sh" server etcd crictl coredns kubeadm
# busybox from source for the busybox image (on failure `up` falls back to busybox-static)
"$venv/bin/python" -m cluster.images_busybox >/dev/null || true
