#!/usr/bin/env bash
# Build the Stratus `tiny` guest from Debian packages only.
#
#   tools/guest/build.sh [OUTDIR]        (or env STRATUS_GUEST_OUT; default tools/guest/out/tiny)
#
# Outputs in OUTDIR: vmlinuz, initrd.img, cmdline, disk.qcow2 (blank 1 GiB base), manifest.json.
# Downloaded .debs are cached in OUTDIR/../cache. Idempotent: rerunning gives byte-identical
# vmlinuz/initrd.img for the same package versions and keeps an existing disk.qcow2.
# Skips all work (about 1 s) when the packages, these scripts and the settings are unchanged.
# Env: STRATUS_GUEST_FORCE=1 rebuilds anyway
#      STRATUS_GUEST_KERNEL=<version, e.g. 6.1.0-56-cloud-amd64> pins the kernel
#      STRATUS_GUEST_DISK_SIZE=<qemu-img size, default 1G>
# Progress goes to stderr; the only network access is apt (the Debian mirror).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-${STRATUS_GUEST_OUT:-$HERE/out/tiny}}
DISK_SIZE=${STRATUS_GUEST_DISK_SIZE:-1G}
CMDLINE="console=ttyS0 quiet memhp_default_state=online swiotlb=512 panic=-1"
# Kernel modules the guest needs (dependencies are added automatically, in order).
WANT_MODULES="virtio_pci virtio_net virtio_blk virtio_balloon virtio-rng button evdev vfat nls_cp437 nls_ascii nls_utf8 isofs"
LIB_PKGS="libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g libext2fs2 libcom-err2 libblkid1 libuuid1"

t0=$(date +%s.%N)
log() { printf '[guest-build %5.1fs] %s\n' "$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo 0)" "$*" >&2; }
die() { echo "[guest-build] ERROR: $*" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=$(dirname "$OUT")/cache
mkdir -p "$CACHE/debs"
# One build per OUTDIR at a time (./stratus up and a test run may both ask for the guest).
if command -v flock >/dev/null; then
    exec 9> "$OUT/.build.lock"
    flock -w 600 9 || die "another build of $OUT holds $OUT/.build.lock"
fi

# --- build host tools -------------------------------------------------------------------------
need_pkgs=()
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v qemu-img >/dev/null || need_pkgs+=(qemu-utils)
command -v bc >/dev/null || need_pkgs+=(bc)
command -v dpkg-deb >/dev/null || need_pkgs+=(dpkg)
if ((${#need_pkgs[@]})); then
    log "installing build host packages: ${need_pkgs[*]}"
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${need_pkgs[*]} (or install them first)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi

# --- choose the kernel --------------------------------------------------------------------------
if [ -n "${STRATUS_GUEST_KERNEL:-}" ]; then
    KVER=$STRATUS_GUEST_KERNEL
else
    KVER=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: linux-image-\(.*-cloud-amd64\)$/\1/p' | head -n 1)
    if [ -z "$KVER" ]; then
        log "apt has no linux-image-cloud-amd64; running apt-get update"
        apt-get update -q >&2 || true
        KVER=$(apt-cache depends linux-image-cloud-amd64 \
            | sed -n 's/^ *Depends: linux-image-\(.*-cloud-amd64\)$/\1/p' | head -n 1)
    fi
fi
[ -n "$KVER" ] || die "cannot determine the Debian cloud kernel version"
KPKG=linux-image-$KVER-unsigned
apt-cache show "$KPKG" >/dev/null 2>&1 || KPKG=linux-image-$KVER
log "kernel $KVER (package $KPKG)"

# --- download (cached) ------------------------------------------------------------------------
PKGS=("$KPKG" busybox-static dropbear-bin e2fsprogs $LIB_PKGS)
declare -A DEB VER
missing=()
while read -r p ver; do VER[$p]=$ver; done < <(apt-cache show --no-all-versions "${PKGS[@]}" 2>/dev/null \
    | awk '/^Package:/ {p = $2} /^Version:/ && !(p in seen) {seen[p] = 1; print p, $2}')
for p in "${PKGS[@]}"; do
    ver=${VER[$p]:-}
    [ -n "$ver" ] || die "apt does not know package $p (apt-get update?)"
    f=$(ls "$CACHE/debs/${p}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
    [ -n "$f" ] || missing+=("$p=$ver")
done
if ((${#missing[@]})); then
    log "downloading ${missing[*]}"
    (cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "${missing[@]}" >/dev/null 2>&1) \
        || (cd "$CACHE/debs" && apt-get -q download "${missing[@]}" >&2) || die "apt-get download failed"
fi
for p in "${PKGS[@]}"; do
    ver=${VER[$p]}
    f=$(ls "$CACHE/debs/${p}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
    [ -n "$f" ] || die "no .deb for $p $ver after download"
    DEB[$p]=$f
done
log "packages ready in $CACHE/debs"

# --- up to date? (same packages, scripts and settings as the last build) -----------------------
STAMP=$( { for p in "${PKGS[@]}"; do basename "${DEB[$p]}"; done
           echo "$CMDLINE|$WANT_MODULES|$DISK_SIZE"; cat "$HERE/build.sh" "$HERE"/files/*; } | sha256sum | cut -d' ' -f1)
if [ "${STRATUS_GUEST_FORCE:-0}" != 1 ] && [ -f "$OUT/.build-stamp" ] && [ "$(cat "$OUT/.build-stamp")" = "$STAMP" ]; then
    ok=1
    for f in vmlinuz initrd.img cmdline disk.qcow2 manifest.json; do [ -s "$OUT/$f" ] || ok=0; done
    if [ "$ok" = 1 ]; then log "up to date: $OUT (STRATUS_GUEST_FORCE=1 rebuilds)"; exit 0; fi
fi

# --- unpack -------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stratus-guest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
X=$WORK/x; R=$WORK/root
mkdir -p "$X" "$R"
for p in "${PKGS[@]}"; do dpkg-deb -x "${DEB[$p]}" "$X"; done
MODDIR=$X/lib/modules/$KVER
[ -f "$X/boot/vmlinuz-$KVER" ] || die "no vmlinuz in $KPKG"
log "unpacked"

# --- initramfs tree -----------------------------------------------------------------------------
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/stratus,etc/acpi/PWRF,lib/modules,lib64,lib/x86_64-linux-gnu,proc,sys,dev,run,tmp,data,root,www/cgi-bin,var}
ln -s ../run "$R/var/run"
cp "$X/bin/busybox" "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"
done
# dropbear, e2fsprogs (ext4 with a journal for /data) and the shared libraries they need,
# resolved with the packaged dynamic loader.
cp "$X/usr/sbin/dropbear" "$R/usr/sbin/"
cp "$X/usr/bin/dropbearkey" "$X/usr/bin/dbclient" "$R/usr/bin/"
cp "$X/sbin/mke2fs" "$X/sbin/e2fsck" "$X/sbin/resize2fs" "$R/usr/sbin/"
mkdir -p "$R/etc"; cp "$X/etc/mke2fs.conf" "$R/etc/mke2fs.conf"
LIBPATH=$X/lib/x86_64-linux-gnu:$X/usr/lib/x86_64-linux-gnu
for b in "$R"/usr/sbin/* "$R"/usr/bin/*; do
    LD_TRACE_LOADED_OBJECTS=1 "$X/lib64/ld-linux-x86-64.so.2" --library-path "$LIBPATH" "$b"
done | awk '$2 == "=>" && $1 !~ /\// {print $1, $3}' | sort -u | while read -r name path; do
    case "$path" in "$X"/*) ;; *) die "library $name resolved outside the packages ($path)";; esac
    cp -L "$path" "$R/lib/x86_64-linux-gnu/$name"
done
cp -L "$X/lib64/ld-linux-x86-64.so.2" "$R/lib64/"
ln -s ../../lib64/ld-linux-x86-64.so.2 "$R/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
[ -f "$R/lib/x86_64-linux-gnu/libc.so.6" ] || die "libc not copied"

# kernel modules: dependency closure in load order, from a depmod run on the unpacked tree.
"$R/bin/busybox" depmod -b "$X" "$KVER" 2>/dev/null || true
[ -s "$MODDIR/modules.dep" ] || die "depmod produced no modules.dep"
declare -A DEPS PATHOF SEEN
while IFS= read -r line; do
    mod=${line%%:*}; rest=${line#*:}
    base=$(basename "$mod" .ko)
    PATHOF[$base]=$mod; DEPS[$mod]=$rest
done < "$MODDIR/modules.dep"
ORDER=()
visit() {
    local m=$1 i
    [ -n "${SEEN[$m]:-}" ] && return; SEEN[$m]=1
    local deps=(${DEPS[$m]})
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do visit "${deps[$i]}"; done
    ORDER+=("$m")
}
for w in $WANT_MODULES; do
    m=${PATHOF[$w]:-${PATHOF[${w//-/_}]:-}}
    if [ -z "$m" ]; then
        grep -qE "/${w//-/[-_]}\.ko$" "$MODDIR/modules.builtin" 2>/dev/null && continue
        die "module $w not found in $KVER"
    fi
    visit "$m"
done
: > "$R/etc/stratus/modules"
for m in "${ORDER[@]}"; do
    cp "$MODDIR/$m" "$R/lib/modules/"
    basename "$m" >> "$R/etc/stratus/modules"
done
log "modules: $(tr '\n' ' ' < "$R/etc/stratus/modules")"

# configuration and scripts
F=$HERE/files
install -m 755 "$F/init" "$R/init"
install -m 644 "$F/inittab" "$R/etc/inittab"
for s in rc.sysinit rc.shutdown online.sh online-loop.sh uevent.sh udhcpc.script; do
    install -m 755 "$F/$s" "$R/etc/stratus/$s"
done
install -m 644 "$F/parse-meta.awk" "$R/etc/stratus/parse-meta.awk"
install -m 755 "$F/index.cgi" "$R/www/cgi-bin/index.cgi"
install -m 755 "$F/power-button" "$R/etc/acpi/PWRF/00000080"
printf 'root:*:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' > "$R/etc/group"
printf '/bin/sh\n/bin/ash\n' > "$R/etc/shells"
printf 'stratus-guest\n' > "$R/etc/hostname"
: > "$R/etc/resolv.conf"
printf 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1="\\h:\\w# "\n' > "$R/etc/profile"
printf 'STRATUS_GUEST_KERNEL=%s\n' "$KVER" > "$R/etc/stratus/release"
chmod 700 "$R/root"

# --- pack (reproducible: fixed mtimes, sorted names, gzip -n) ----------------------------------
find "$R" -exec touch -h -d @0 {} +
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
    | gzip -n -9 > "$WORK/initrd.img"
cp "$X/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
printf '%s\n' "$CMDLINE" > "$WORK/cmdline"
log "initrd $(du -k "$WORK/initrd.img" | cut -f1) KiB"

# --- install into OUTDIR (atomic renames) -------------------------------------------------------
for f in vmlinuz initrd.img cmdline; do
    if ! cmp -s "$WORK/$f" "$OUT/$f"; then
        cp "$WORK/$f" "$OUT/.$f.new" && mv -f "$OUT/.$f.new" "$OUT/$f"
    fi
done
if [ ! -f "$OUT/disk.qcow2" ] || ! qemu-img info --output=json "$OUT/disk.qcow2" 2>/dev/null | grep -q '"format": "qcow2"'; then
    qemu-img create -q -f qcow2 "$OUT/.disk.qcow2.new" "$DISK_SIZE" >/dev/null
    mv -f "$OUT/.disk.qcow2.new" "$OUT/disk.qcow2"
    log "created blank $DISK_SIZE disk.qcow2"
fi
chmod 444 "$OUT/disk.qcow2" 2>/dev/null || true

sha() { sha256sum "$OUT/$1" | cut -d' ' -f1; }
vsize=$(qemu-img info --output=json "$OUT/disk.qcow2" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | head -n 1)
pkgjson=$(for p in "${PKGS[@]}"; do printf '    "%s": "%s",\n' "$p" "$(basename "${DEB[$p]}")"; done | sed '$ s/,$//')
cat > "$OUT/.manifest.json.new" <<JSON
{
  "name": "tiny",
  "kernel_version": "$KVER",
  "kernel_package": "$KPKG",
  "cmdline": "$CMDLINE",
  "build_date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "files": {
    "vmlinuz": {"sha256": "$(sha vmlinuz)", "bytes": $(stat -c %s "$OUT/vmlinuz")},
    "initrd.img": {"sha256": "$(sha initrd.img)", "bytes": $(stat -c %s "$OUT/initrd.img")},
    "cmdline": {"sha256": "$(sha cmdline)", "bytes": $(stat -c %s "$OUT/cmdline")},
    "disk.qcow2": {"sha256": "$(sha disk.qcow2)", "bytes": $(stat -c %s "$OUT/disk.qcow2"), "format": "qcow2", "virtual_size": ${vsize:-0}}
  },
  "debs": {
$pkgjson
  }
}
JSON
mv -f "$OUT/.manifest.json.new" "$OUT/manifest.json"
echo "$STAMP" > "$OUT/.build-stamp"
log "done: $OUT"
