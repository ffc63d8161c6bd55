#!/usr/bin/env bash
# Builds the virtual-router guest for the migration testbeds: a Debian kernel
# (its package downloaded once into the cache, never installed) and an initramfs
# with busybox, BIRD 2 and vrfwd-agent, whose /init configures the router. The
# same pair boots as a QEMU guest (virtio-net) and as a Xen PV DomU (netfront).
#
# usage: build.sh CACHE_DIR AGENT_BINARY   → CACHE_DIR/vmlinuz, CACHE_DIR/initrd.gz
set -euo pipefail
cache=$1 agent=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache/debs"

# 1. The kernel and its virtio-net and Xen netfront modules (Debian builds them as
#    modules).
download_kernel() {
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] && (cd "$cache/debs" && apt-get download "$pkg" >/dev/null 2>&1)
}
if ! ls "$cache"/debs/linux-image-*-amd64_*.deb >/dev/null 2>&1; then
  # Stale or missing package lists on a fresh machine: refresh them once.
  download_kernel || { apt-get update -qq && download_kernel; } ||
    { echo "build.sh: cannot download Debian's linux-image-amd64" >&2; exit 1; }
fi
if [ ! -f "$cache/vmlinuz" ]; then
  rm -rf "$cache/kernel"
  dpkg-deb -x "$cache"/debs/linux-image-*-amd64_*.deb "$cache/kernel"
  cp "$cache"/kernel/boot/vmlinuz-* "$cache/vmlinuz"
fi
kver=$(ls "$cache/kernel/lib/modules")
mods=$cache/kernel/lib/modules/$kver/kernel

# 2. The root file system.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/vrfwd,proc,sys,dev,run,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"   # busybox-static: no libraries
for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover \
         drivers/net/net_failover drivers/net/virtio_net; do
  cp "$mods/$m.ko" "$root/lib/modules/"
  echo "$(basename "$m").ko" >> "$root/lib/modules/order"
done
cp "$mods/drivers/net/xen-netfront.ko" "$root/lib/modules/"
# BIRD 2 and the agent are dynamically linked: bring their libraries (the host is
# the same Debian release as the guest's packages).
cp /usr/sbin/bird /usr/sbin/birdc "$root/usr/sbin/"
cp "$agent" "$root/usr/sbin/vrfwd-agent"
strip "$root/usr/sbin/vrfwd-agent" 2>/dev/null || true
for bin in "$root/usr/sbin/bird" "$root/usr/sbin/birdc" "$root/usr/sbin/vrfwd-agent"; do
  ldd "$bin" | awk '/=> \//{print $3} $1 ~ /^\/lib64\//{print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
cp "$here/bird.conf" "$root/etc/bird.conf"
cp "$here/agent.toml" "$root/etc/vrfwd/agent.toml"
echo -n "vr1-secret-for-testbeds" > "$root/etc/vrfwd/credential"
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
cp "$here/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$cache/initrd.gz.new")
mv "$cache/initrd.gz.new" "$cache/initrd.gz"
