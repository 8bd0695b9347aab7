#!/usr/bin/env bash
# Build a NoCloud config drive for the Stratus tiny guest (and for cloud-init images).
#
#   tools/guest/make-config-drive.sh OUT.img META_DATA_FILE USER_DATA_FILE [PUBKEYS_FILE]
#
# OUT.img     raw FAT image (vfat, label CIDATA) holding /meta-data and /user-data; attach it as a
#             read-only virtio-blk disk after the root disk (see docs/guest.md).
# META_DATA   NoCloud meta-data (YAML subset): `instance-id: ID`, optional `local-hostname: NAME`,
#             optional `public-keys:` block list.
# USER_DATA   a script starting with `#!` (run at every boot of the tiny guest), `#cloud-config`,
#             or "" / /dev/null for none.
# PUBKEYS     optional OpenSSH public keys, one per line; added to meta-data as `public-keys:`
#             (META_DATA must not already have a public-keys key then).
# Needs dosfstools (mkfs.vfat) and mtools (mcopy); no root, no mounts. Exit 2 on bad input.
set -euo pipefail

usage() { echo "usage: $0 OUT.img META_DATA_FILE USER_DATA_FILE [PUBKEYS_FILE]" >&2; exit 2; }
bad() { echo "make-config-drive: $*" >&2; exit 2; }
[ $# -ge 3 ] && [ $# -le 4 ] || usage
out=$1 meta=$2 user=$3 keys=${4:-}

for c in mkfs.vfat mcopy; do
    command -v "$c" >/dev/null || PATH=$PATH:/sbin:/usr/sbin command -v "$c" >/dev/null \
        || bad "$c missing: apt-get install dosfstools mtools"
done
export PATH=$PATH:/sbin:/usr/sbin

[ -f "$meta" ] || bad "meta-data file '$meta' not found"
grep -q '^instance-id:[[:space:]]*[^[:space:]]' "$meta" || bad "meta-data has no instance-id"
[ -z "$user" ] || [ -e "$user" ] || bad "user-data file '$user' not found"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$meta" "$tmp/meta-data"
if [ -n "$keys" ]; then
    [ -f "$keys" ] || bad "public keys file '$keys' not found"
    grep -qE '^(public-keys|public_keys|ssh_authorized_keys):' "$meta" \
        && bad "meta-data already has public-keys; do not pass PUBKEYS_FILE too"
    n=0
    {
        echo "public-keys:"
        while IFS= read -r k || [ -n "$k" ]; do
            k=${k%$'\r'}
            case "$k" in ''|'#'*) continue ;; esac
            [[ $k =~ ^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\ [A-Za-z0-9+/=]+(\ .*)?$ ]] \
                || bad "malformed public key line: ${k:0:40}..."
            printf '  - "%s"\n' "${k//\"/}"
            n=$((n + 1))
        done < "$keys"
    } > "$tmp/keys"
    [ "$n" -gt 0 ] || bad "no public key in '$keys'"
    [ -z "$(tail -c 1 "$tmp/meta-data")" ] || echo >> "$tmp/meta-data"
    cat "$tmp/keys" >> "$tmp/meta-data"
fi
if [ -n "$user" ]; then cp "$user" "$tmp/user-data"; else : > "$tmp/user-data"; fi

# Size: contents + 512 KiB slack, at least 1 MiB (FAT12).
bytes=$(( $(stat -c %s "$tmp/meta-data") + $(stat -c %s "$tmp/user-data") ))
kib=$(( (bytes + 1023) / 1024 + 512 ))
[ "$kib" -ge 1024 ] || kib=1024
rm -f "$out.tmp"
mkfs.vfat -C -n CIDATA "$out.tmp" "$kib" >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -i "$out.tmp" "$tmp/meta-data" ::meta-data
MTOOLS_SKIP_CHECK=1 mcopy -i "$out.tmp" "$tmp/user-data" ::user-data
mv -f "$out.tmp" "$out"
