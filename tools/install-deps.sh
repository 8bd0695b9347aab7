#!/usr/bin/env bash
# Installs what Stratus needs from the distribution's packages, only when missing.
# Usage: tools/install-deps.sh up|test
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
case "${1:-up}" in
  up|test)
    have qemu-system-x86_64 || need+=(qemu-system-x86)
    have qemu-img || need+=(qemu-utils)
    have qemu-storage-daemon || need+=(qemu-system-common)   # backups of stopped VMs
    have sqlite3 || need+=(sqlite3)
    have flock || need+=(util-linux)
    have setpriv || need+=(util-linux)
    have curl || need+=(curl)
    have ssh-keygen || need+=(openssh-client)
    have cpio || need+=(cpio)
    have bc || need+=(bc)
    have mcopy || need+=(mtools)
    have mkfs.vfat || [ -x /sbin/mkfs.vfat ] || [ -x /usr/sbin/mkfs.vfat ] || need+=(dosfstools)
    have python3 || need+=(python3)
    ;;
esac
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "stratus: missing packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "stratus: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# The unprivileged user QEMU runs as (docs/qemu-driver.md, "Privileges"); the QEMU driver also
# creates it when missing, and runs QEMU as root with a warning when it cannot.
if [ "$(id -u)" = 0 ] && ! getent passwd stratus-qemu >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "Stratus QEMU" stratus-qemu >&2 || echo "stratus: could not create user stratus-qemu" >&2
fi
