#!/usr/bin/env bash
# Host-side check (no VM, < 1 s) of the guest's meta-data reader (files/parse-meta.awk) on the YAML
# forms cloud-init users write. Runs it with the guest's own busybox awk (taken from the cached
# busybox-static .deb, or a host busybox) and falls back to the host awk.
# Exit 0 = all cases read as expected.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-${STRATUS_GUEST_OUT:-$HERE/out/tiny}}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
AWK=(awk)
deb=$(ls "$(dirname "$OUT")"/cache/debs/busybox-static_*.deb 2>/dev/null | head -n 1)
if [ -n "$deb" ] && dpkg-deb --fsys-tarfile "$deb" | tar -xO ./bin/busybox > "$W/busybox" 2>/dev/null; then
    chmod +x "$W/busybox"; AWK=("$W/busybox" awk)
elif command -v busybox >/dev/null; then AWK=(busybox awk); fi
fails=0
check() { # name, input, expected id, expected hostname, expected keys (\n separated)
    printf '%s' "$2" > "$W/in"; rm -f "$W/id" "$W/hn" "$W/keys"; touch "$W/id" "$W/hn" "$W/keys"
    "${AWK[@]}" -v ID="$W/id" -v HN="$W/hn" -v KEYS="$W/keys" -f "$HERE/files/parse-meta.awk" "$W/in"
    local got; got="$(cat "$W/id")|$(cat "$W/hn")|$(cat "$W/keys")"
    local want; want="$3|$4|$(printf '%b' "$5")"
    if [ "$got" = "$want" ]; then echo "[parse-meta] PASS $1" >&2
    else echo "[parse-meta] FAIL $1: got '$got' want '$want'" >&2; fails=$((fails + 1)); fi
}
check "block list, quoted" $'instance-id: i-1\nlocal-hostname: web\npublic-keys:\n  - "ssh-ed25519 AAAA1 a"\n  - ssh-rsa AAAA2 b\n' \
    i-1 web 'ssh-ed25519 AAAA1 a\nssh-rsa AAAA2 b'
check "block mapping + comments + other keys" $'# c\ninstance-id: "i-2"\nhostname: \'h2\'\npublic-keys:\n  k1: ssh-ed25519 AAAA3 x\n  k2: "ecdsa-sha2-nistp256 AAAA4"\nnetwork-interfaces: |\n  auto eth0\n' \
    i-2 h2 'ssh-ed25519 AAAA3 x\necdsa-sha2-nistp256 AAAA4'
check "flow list under ssh_authorized_keys" $'instance-id: i-3\nssh_authorized_keys: ["ssh-ed25519 AAAA5 c", "ssh-ed25519 AAAA6"]\n' \
    i-3 '' 'ssh-ed25519 AAAA5 c\nssh-ed25519 AAAA6'
check "inline single key, CRLF" $'instance-id: i-4\r\npublic-keys: ssh-ed25519 AAAA7 d\r\n' i-4 '' 'ssh-ed25519 AAAA7 d'
check "non-keys ignored" $'instance-id: i-5\npublic-keys:\n  - not-a-key\n  - ssh-ed25519 AAAA8\nruncmd:\n  - ssh-ed25519 NOTAKEY\n' \
    i-5 '' 'ssh-ed25519 AAAA8'
check "#cloud-config user-data" $'#cloud-config\nusers:\n  - default\nssh_authorized_keys:\n  - ssh-ed25519 AAAA9 cc\nruncmd:\n  - echo hi\n' \
    '' '' 'ssh-ed25519 AAAA9 cc'
[ "$fails" = 0 ]
