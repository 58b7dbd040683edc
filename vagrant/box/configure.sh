# Runs inside the box's rootfs (chroot, as root, bash -euo pipefail) from vagrant/box/build.sh,
# after vagrant/box/files/ was copied over the rootfs. /tmp/wheels holds the wheels of pykubelet's
# dependencies, /tmp/vagrant.pub Vagrant's insecure public key.
export DEBIAN_FRONTEND=noninteractive
echo "configure: $(. /etc/os-release; echo "$PRETTY_NAME"), python $(python3 -c 'import platform; print(platform.python_version())')"

# Identity: every VM makes its own machine-id at first boot (dbus's is the same file).
: > /etc/machine-id
mkdir -p /var/lib/dbus
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id

# The vagrant user: passwordless sudo, Vagrant's insecure key (vagrant replaces it on first up).
id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash -U vagrant
echo vagrant:vagrant | chpasswd   # for the serial console only: sshd takes keys only
install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.ssh
install -m 0600 -o vagrant -g vagrant /tmp/vagrant.pub /home/vagrant/.ssh/authorized_keys
chmod 0440 /etc/sudoers.d/vagrant
visudo -c -q
passwd -l root >/dev/null

# SSH host keys are made per VM at first boot.
rm -f /etc/ssh/ssh_host_*

# Units: networkd for eth0 and the dummy default route; no first-boot prompts on the console;
# no apt timers (no mirror is reachable from a node); no ipvsadm rules restored at boot (the
# Service proxy owns IPVS); no getty on tty1 (no display).
systemctl enable systemd-networkd.service pykubelet-ssh-hostkeys.service pykubelet-hostname.service \
  ssh.service containerd.service
# ifupdown stays installed for scripts that call ifup/ifdown, but its boot-time networking.service
# has nothing to bring up (lo only) and costs ~20 s of boot under TCG.
systemctl disable systemd-networkd-wait-online.service networking.service
for u in systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
         fstrim.timer man-db.timer ipvsadm.service getty@tty1.service; do
  systemctl mask "$u" >/dev/null 2>&1 || true
done
ln -sf /lib/systemd/system/multi-user.target /etc/systemd/system/default.target

# Where the runtime and pykubelet's network plugin meet. containerd 1.6's CRI also runs the
# standard `loopback` plugin for every sandbox (from its one bin dir), so link it in.
mkdir -p /opt/cni/bin /etc/cni/net.d
ln -sf /usr/lib/cni/loopback /opt/cni/bin/loopback

# pykubelet's dependencies in its venv, offline from the wheels the host downloaded.
python3 -m venv /opt/pykubelet/venv
/opt/pykubelet/venv/bin/pip install -q --no-index --disable-pip-version-check \
  --find-links /tmp/wheels -r /tmp/wheels/requirements.txt
/opt/pykubelet/venv/bin/python -c 'import grpc, google.protobuf, cryptography, yaml, httpx, aiohttp, prometheus_client, pyroute2'
/opt/pykubelet/venv/bin/pip list --disable-pip-version-check --format=freeze | sed 's/^/configure: venv: /'

# What this box is (provision/node.sh looks for this file).
cat > /etc/pykubelet-box <<EOT
debian=$(cat /etc/debian_version)
kernel=$(ls /boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | sort -V | tail -1)
python=$(python3 -c 'import platform; print(platform.python_version())')
containerd=$(dpkg-query -W -f='${Version}' containerd)
runc=$(dpkg-query -W -f='${Version}' runc)
venv=/opt/pykubelet/venv
cgroup_driver=$(grep -Eq '^ *SystemdCgroup *= *true' /etc/containerd/config.toml && echo systemd || echo cgroupfs)
EOT

# Smaller box: no package caches or lists, docs, man pages or translations.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
       /usr/share/info/* /usr/share/locale/* /var/cache/debconf/*-old /var/lib/dpkg/*-old \
       /tmp/wheels /tmp/vagrant.pub /root/.cache
find /var/log -type f -exec truncate -s 0 {} +
echo "configure: done"
