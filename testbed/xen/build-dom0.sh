#!/usr/bin/env bash
# Builds the nested Xen host's Dom0 disk image: Debian 12 (debootstrap, minbase)
# with Xen 4.17, its Dom0 kernel and the DPDK 22.11 run-time libraries vrfwd
# links against. Everything is cached in CACHE_DIR; the image is made once and
# each run boots a qcow2 overlay of it. vrfwd itself, its hooks and the test
# scripts are not in the image: they reach the Dom0 through a 9p share, so a
# rebuilt vrfwd needs no new image.
#
# usage: build-dom0.sh CACHE_DIR   → CACHE_DIR/{dom0.raw,xen.elf,dom0-vmlinuz,dom0-initrd.img}
set -euo pipefail
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
root=$cache/dom0-root
[ -f "$cache/dom0.raw" ] && [ "$cache/dom0.raw" -nt "$here/dom0-init" ] && exit 0

mirror=${MIRROR:-http://deb.debian.org/debian}
packages=(
  xen-hypervisor-4.17-amd64 xen-utils-4.17 linux-image-amd64 initramfs-tools kmod udev
  iproute2 iputils-ping procps socat busybox-static tcpdump
  librte-eal23 librte-ethdev23 librte-kvargs23 librte-mbuf23 librte-mempool23 librte-meter23
  librte-net23 librte-rcu23 librte-ring23 librte-telemetry23 librte-mempool-ring23
  librte-net-af-packet23
)
if [ ! -f "$root/.complete" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
  rm -rf "$root"
  debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" bookworm "$root" "$mirror"
  chroot "$root" apt-get clean
  touch "$root/.complete"
fi

install -m 755 "$here/dom0-init" "$root/vrfwd-testbed-init"
echo "/dev/vda / ext4 rw 0 1" > "$root/etc/fstab"
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
cp "$root/boot/vmlinuz-$kver" "$cache/dom0-vmlinuz"
cp "$root/boot/initrd.img-$kver" "$cache/dom0-initrd.img"
# QEMU's multiboot loader wants the uncompressed 32-bit ELF of the hypervisor.
zcat "$root"/boot/xen-4.17*-amd64.gz > "$cache/xen.elf"
rm -f "$cache/dom0.raw.new"
mke2fs -q -t ext4 -L vrfwd-dom0 -d "$root" "$cache/dom0.raw.new" 3G
mv "$cache/dom0.raw.new" "$cache/dom0.raw"
