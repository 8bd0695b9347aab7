#!/usr/bin/env bash
# Build a real Debian cloud guest (debootstrap + cloud-init + the cloud kernel) that takes the same
# NoCloud config drive as the tiny guest. Slow optional path (several minutes); needs root
# (debootstrap, chroot) but no loop devices or mounts of images.
#
#   tools/guest/build-debian.sh [OUTDIR]   (or env STRATUS_GUEST_DEBIAN_OUT; default tools/guest/out/debian)
#
# Outputs in OUTDIR, the same layout as the tiny guest so the driver boots it the same way:
#   vmlinuz, initrd.img   the image's own kernel and initramfs (direct kernel boot, no bootloader)
#   cmdline               kernel command line (root=/dev/vda: the overlay of disk.qcow2 must be vda)
#   disk.qcow2            ext4 root filesystem (whole disk, no partition table), default 2 GiB
#   manifest.json         kernel version, sha256 of each file, build date, suite
# The debootstrap package cache is kept in OUTDIR/../cache/debootstrap.
# The ACPI power button powers it off (systemd-logind, hence dbus); hot-added CPUs and memory are
# onlined by a udev rule.
# cloud-init: datasource NoCloud (config drive labelled cidata/CIDATA, vfat or iso9660), keys from
# meta-data `public-keys` go to the `debian` user and to root; a `#!` user-data script runs once
# per instance (cloud-init semantics), its output on the console.
# Env: STRATUS_DEBIAN_SUITE (default: the host's codename), STRATUS_DEBIAN_MIRROR
#      (default: the host's first Debian URI), STRATUS_DEBIAN_DISK_SIZE (default 2G).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-${STRATUS_GUEST_DEBIAN_OUT:-$HERE/out/debian}}
t0=$(date +%s)
log() { echo "[debian-build $(( $(date +%s) - t0 ))s] $*" >&2; }
die() { echo "[debian-build] ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"

. /etc/os-release
SUITE=${STRATUS_DEBIAN_SUITE:-${VERSION_CODENAME:-bookworm}}
MIRROR=${STRATUS_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
DISK_SIZE=${STRATUS_DEBIAN_DISK_SIZE:-2G}
CMDLINE="console=ttyS0 root=/dev/vda rw net.ifnames=0 memhp_default_state=online swiotlb=512 panic=-1"
INCLUDE=systemd-sysv,udev,netbase,iproute2,procps
# Installed with apt inside the chroot afterwards (debootstrap's own resolver trips on cloud-init's
# python dependencies).
PACKAGES="linux-image-cloud-amd64 cloud-init openssh-server ifupdown isc-dhcp-client busybox e2fsprogs ca-certificates dbus"

mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
CACHE=$(dirname "$OUT")/cache/debootstrap
mkdir -p "$CACHE"
for c in debootstrap qemu-img mke2fs; do
    command -v "$c" >/dev/null || PATH=$PATH:/sbin:/usr/sbin command -v "$c" >/dev/null || {
        log "installing debootstrap qemu-utils e2fsprogs"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap qemu-utils e2fsprogs >&2; break; }
done
export PATH=$PATH:/sbin:/usr/sbin

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stratus-debian.XXXXXX")
ROOT=$WORK/root
cleanup() {
    for m in dev/pts dev proc sys; do umount "$ROOT/$m" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

LOGF=$(dirname "$OUT")/debian-build.log
log "debootstrap $SUITE from $MIRROR (minbase + $INCLUDE); log in $LOGF"
debootstrap --variant=minbase --cache-dir="$CACHE" --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" \
    > "$LOGF" 2>&1 || { cp "$ROOT/debootstrap/debootstrap.log" "$LOGF.inner" 2>/dev/null; tail -30 "$LOGF" >&2; die "debootstrap failed"; }
log "debootstrap done; apt-get install $PACKAGES"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$ROOT/etc/apt/sources.list"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
mount -t proc proc "$ROOT/proc"; mount -t sysfs sysfs "$ROOT/sys"
mount --bind /dev "$ROOT/dev"; mount --bind /dev/pts "$ROOT/dev/pts"
mkdir -p "$ROOT/var/cache/apt/archives"
cp "$CACHE"/*.deb "$ROOT/var/cache/apt/archives/" 2>/dev/null || true
chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 sh -c \
    "apt-get -q update && apt-get -q -y --no-install-recommends install $PACKAGES" >> "$LOGF" 2>&1 \
    || { tail -30 "$LOGF" >&2; die "apt-get install in the chroot failed"; }
cp "$ROOT"/var/cache/apt/archives/*.deb "$CACHE/" 2>/dev/null || true
for m in dev/pts dev sys proc; do umount "$ROOT/$m"; done
rm -f "$ROOT/usr/sbin/policy-rc.d"
: > "$ROOT/etc/resolv.conf"
log "packages installed"

# --- configure the image ---------------------------------------------------------------------
echo debian > "$ROOT/etc/hostname"
printf 'LABEL=debian-root / ext4 defaults,noatime 0 1\n' > "$ROOT/etc/fstab"
mkdir -p "$ROOT/etc/cloud/cloud.cfg.d" "$ROOT/etc/network/interfaces.d"
cat > "$ROOT/etc/cloud/cloud.cfg.d/99-stratus.cfg" <<'CFG'
# Stratus: NoCloud config drive only (no network metadata probing), keys for root too.
datasource_list: [ NoCloud, None ]
disable_root: false
ssh_pwauth: false
locale: C.UTF-8
CFG
printf 'LANG=C.UTF-8\n' > "$ROOT/etc/default/locale"
# Online hot-added CPUs and memory (the kernel does not, and minbase udev has no rule for it).
mkdir -p "$ROOT/etc/udev/rules.d"
cat > "$ROOT/etc/udev/rules.d/80-stratus-hotplug.rules" <<'RULES'
SUBSYSTEM=="cpu", ACTION=="add", TEST=="online", ATTR{online}=="0", ATTR{online}="1"
SUBSYSTEM=="memory", ACTION=="add", TEST=="state", ATTR{state}=="offline", ATTR{state}="online"
RULES
# No VGA console under -nodefaults: no gettys on tty1-6 (the serial getty stays).
ln -sf /dev/null "$ROOT/etc/systemd/system/getty@.service"
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' > "$ROOT/etc/network/interfaces"
# eth0 (DHCP) comes from cloud-init's fallback network config (/etc/network/interfaces.d/50-cloud-init).
: > "$ROOT/etc/machine-id"
rm -f "$ROOT"/etc/ssh/ssh_host_*
passwd_root=$(chroot "$ROOT" passwd -l root 2>&1) || log "passwd -l: $passwd_root"
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/log/*.log

KFILE=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n 1)
KVER=${KFILE##*/vmlinuz-}
[ -f "$ROOT/boot/initrd.img-$KVER" ] || die "no initrd for $KVER"
log "kernel $KVER"

# --- pack: ext4 filesystem image built from the directory (no mounts), then qcow2 -----------------
mke2fs -q -t ext4 -L debian-root -d "$ROOT" -E root_owner=0:0 "$WORK/root.img" "$DISK_SIZE"
qemu-img convert -O qcow2 "$WORK/root.img" "$WORK/disk.qcow2"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
printf '%s\n' "$CMDLINE" > "$WORK/cmdline"
for f in vmlinuz initrd.img cmdline disk.qcow2; do mv -f "$WORK/$f" "$OUT/$f"; done
sha() { sha256sum "$OUT/$1" | cut -d' ' -f1; }
cat > "$OUT/manifest.json" <<JSON
{
  "name": "debian",
  "suite": "$SUITE",
  "kernel_version": "$KVER",
  "cmdline": "$CMDLINE",
  "build_date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "files": {
    "vmlinuz": {"sha256": "$(sha vmlinuz)", "bytes": $(stat -c %s "$OUT/vmlinuz")},
    "initrd.img": {"sha256": "$(sha initrd.img)", "bytes": $(stat -c %s "$OUT/initrd.img")},
    "cmdline": {"sha256": "$(sha cmdline)", "bytes": $(stat -c %s "$OUT/cmdline")},
    "disk.qcow2": {"sha256": "$(sha disk.qcow2)", "bytes": $(stat -c %s "$OUT/disk.qcow2"), "format": "qcow2"}
  }
}
JSON
log "done: $OUT ($(du -sh "$OUT/disk.qcow2" | cut -f1) qcow2)"
