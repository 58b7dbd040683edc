#!/usr/bin/env bash
# Build the vagrant-libvirt box of Debian 12 "bookworm" that pykubelet's VM nodes boot, offline:
# only Debian's package mirror and PyPI are reached.
#
#   bash vagrant/box/build.sh          (make vagrant-box)
#
# Two cached stages under ${PYK_VAGRANT_CACHE:-~/.cache/pykubelet/vagrant}:
#   rootfs/<h1>.tar    debootstrap --variant=minbase of packages.txt   (h1: suite, mirror, packages)
#   boxes/<h2>/        the configured box: pykubelet-debian12.box (box.img qcow2, metadata.json,
#                      Vagrantfile, vmlinuz, initrd.img) plus vmlinuz/initrd.img beside it
#                      (h2: h1 and everything under vagrant/box/, pykubelet's dependencies,
#                      Vagrant's insecure public key)
# A second call with the same inputs finds boxes/<h2>/ and returns at once. Either way it writes
# <cache>/current.env (PYK_BOX=name, PYK_BOX_FILE=path), which vagrant/Vagrantfile reads.
#
# Needs root (debootstrap, chroot) and the host tools vagrant/host/setup.sh installs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${PYK_VAGRANT_CACHE:-$HOME/.cache/pykubelet/vagrant}
SUITE=bookworm
MIRROR=${PYK_MIRROR:-http://deb.debian.org/debian}
DISK_GB=${PYK_BOX_DISK_GB:-10}
GUEST_PY=3.11.2          # bookworm's python3; the venv's wheels are chosen for it
BOX_BASENAME=pykubelet-debian12

log() { printf 'box: %s\n' "$*" >&2; }
die() { printf 'box: error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot)"
for t in debootstrap mkfs.ext4 qemu-img python3 tar sha256sum; do
  command -v "$t" >/dev/null || die "$t missing: run vagrant/host/setup.sh"
done

VAGRANT_PUB=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1 || true)
[ -n "$VAGRANT_PUB" ] || die "Vagrant's insecure public key not found: apt-get install vagrant"

PACKAGES=$(sed -e 's/#.*//' "$HERE/packages.txt" | xargs | tr ' ' ,)
# pykubelet's runtime dependencies, from pyproject.toml [project].dependencies
DEPS=$(python3 - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
EOF
)

H1=$(printf '%s\n' "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-16)
H2=$( { echo "$H1"; echo "$DEPS"; cat "$VAGRANT_PUB";
        find "$HERE" -type f ! -name '*~' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-12)
BOX_NAME=$BOX_BASENAME-$H2
OUT=$CACHE/boxes/$H2
BOX_FILE=$OUT/$BOX_BASENAME.box

write_current() {
  cat > "$CACHE/current.env" <<EOF
PYK_BOX=$BOX_NAME
PYK_BOX_FILE=$BOX_FILE
EOF
}

if [ -f "$OUT/done" ]; then
  write_current
  log "cached: $BOX_FILE ($(du -h "$BOX_FILE" | cut -f1)), box name $BOX_NAME"
  echo "$BOX_FILE"
  exit 0
fi

t0=$(date +%s)
mkdir -p "$CACHE/rootfs" "$CACHE/wheels" "$CACHE/work"
WORK=$(mktemp -d "$CACHE/work/$H2.XXXX")
ROOT=$WORK/root
cleanup() {
  for m in dev/pts dev proc sys; do mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- stage 1: debootstrap (cached by h1) ------------------------------------------------------
ROOTFS_TAR=$CACHE/rootfs/$H1.tar
if [ ! -f "$ROOTFS_TAR" ]; then
  log "debootstrap $SUITE from $MIRROR (minbase + $(echo "$PACKAGES" | tr , '\n' | wc -l) packages)"
  mkdir -p "$WORK/bootstrap"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/bootstrap" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$WORK/bootstrap/var/cache/apt/archives/"*.deb
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$WORK/bootstrap" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$WORK/bootstrap"
  log "rootfs stage done in $(( $(date +%s) - t0 ))s: $ROOTFS_TAR"
else
  log "rootfs stage cached: $ROOTFS_TAR"
fi

# ---- wheels of pykubelet's dependencies for the guest's CPython (cached by the dependency list) --
HW=$(printf '%s\n' "$GUEST_PY" "$DEPS" | sha256sum | cut -c1-16)
WHEELS=$CACHE/wheels/$HW
if [ ! -f "$WHEELS/.done" ]; then
  log "pip download for cp311 manylinux x86_64: $(echo "$DEPS" | xargs)"
  rm -rf "$WHEELS"; mkdir -p "$WHEELS"
  plats=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
  for v in $(seq 17 36); do plats+=(--platform "manylinux_2_${v}_x86_64"); done
  # shellcheck disable=SC2086
  python3 -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$WHEELS" \
    "${plats[@]}" --python-version "$GUEST_PY" --implementation cp --abi cp311 --abi abi3 --abi none \
    $(echo "$DEPS" | tr '\n' ' ') || die "pip download failed"
  echo "$DEPS" > "$WHEELS/requirements.txt"
  touch "$WHEELS/.done"
fi

# ---- stage 2: configure the rootfs ------------------------------------------------------------
log "configuring rootfs in $ROOT"
mkdir -p "$ROOT"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$ROOT" -xf "$ROOTFS_TAR"
cp -a "$HERE/files/." "$ROOT/"   # config files: see vagrant/box/files/

mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
mkdir -p "$ROOT/tmp/wheels"
cp "$WHEELS"/*.whl "$WHEELS/requirements.txt" "$ROOT/tmp/wheels/"
install -m 0644 "$VAGRANT_PUB" "$ROOT/tmp/vagrant.pub"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /bin/bash -euo pipefail -s < "$HERE/configure.sh" >"$WORK/configure.log" 2>&1 ||
  { tail -40 "$WORK/configure.log" >&2; die "configure.sh failed in the chroot"; }
cat "$WORK/configure.log" >&2
umount "$ROOT/dev" "$ROOT/proc"

# ---- image -----------------------------------------------------------------------------------
mkdir -p "$WORK/box"
KVER=$(basename "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)" | sed 's/^vmlinuz-//')
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/box/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/box/initrd.img"
log "kernel $KVER; making a ${DISK_GB}G ext4 image from $(du -sh "$ROOT" | cut -f1) of files"
truncate -s "${DISK_GB}G" "$WORK/root.raw"
mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$ROOT" "$WORK/root.raw"
rm -rf "$ROOT"
qemu-img convert -c -f raw -O qcow2 "$WORK/root.raw" "$WORK/box/box.img"
rm -f "$WORK/root.raw"

cat > "$WORK/box/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $DISK_GB}
EOF
cat > "$WORK/box/Vagrantfile" <<EOF
# Box $BOX_NAME: Debian 12 ($KVER), booted directly from the kernel and initrd inside the box.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.join(__dir__, "vmlinuz")
    libvirt.initrd = File.join(__dir__, "initrd.img")
    libvirt.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 biosdevname=0"
    libvirt.disk_bus = "virtio"
    libvirt.driver = "qemu"
    libvirt.cpu_mode = "custom"
    libvirt.cpu_model = "qemu64"
  end
end
EOF
tar -C "$WORK/box" -cf "$WORK/$BOX_BASENAME.box" metadata.json Vagrantfile box.img vmlinuz initrd.img

rm -rf "$OUT"; mkdir -p "$OUT"
mv "$WORK/$BOX_BASENAME.box" "$OUT/"
cp "$WORK/box/vmlinuz" "$WORK/box/initrd.img" "$WORK/box/metadata.json" "$OUT/"
secs=$(( $(date +%s) - t0 ))
cat > "$OUT/done" <<EOF
name=$BOX_NAME
kernel=$KVER
build_seconds=$secs
box_bytes=$(stat -c %s "$OUT/$BOX_BASENAME.box")
EOF
write_current
# keep only this box and the rootfs it came from (older builds are large)
find "$CACHE/boxes" -mindepth 1 -maxdepth 1 ! -name "$H2" -exec rm -rf {} +
find "$CACHE/rootfs" -mindepth 1 -maxdepth 1 ! -name "$H1.tar" -exec rm -f {} +
# and no older pykubelet boxes in Vagrant's box store (their libvirt volumes go with teardown.sh)
if [ -d "${VAGRANT_HOME:-$CACHE/home}/boxes" ]; then
  find "${VAGRANT_HOME:-$CACHE/home}/boxes" -mindepth 1 -maxdepth 1 -name "$BOX_BASENAME-*" \
    ! -name "$BOX_NAME" -exec rm -rf {} +
fi
log "built $BOX_FILE in ${secs}s ($(du -h "$OUT/$BOX_BASENAME.box" | cut -f1)), box name $BOX_NAME"
echo "$BOX_FILE"
