#!/usr/bin/env bash
# Slow check of the optional Debian image (build-debian.sh): boots it as the driver boots the tiny
# guest, with a config drive made by make-config-drive.sh, and checks that cloud-init took the
# user-data (ran the script) and the key (root SSH), that a hot-added CPU comes online and that
# system_powerdown powers it off. Minutes under TCG; belongs in bench/ or a nightly job.
#
#   tools/guest/selftest-debian.sh [OUTDIR]   (default tools/guest/out/debian; builds if missing)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-${STRATUS_GUEST_DEBIAN_OUT:-$HERE/out/debian}}
TIMEOUT=${STRATUS_SELFTEST_DEBIAN_TIMEOUT:-400}
say() { echo "[debian-selftest] $*" >&2; }
FAILS=0; pass() { say "PASS $*"; }; fail() { say "FAIL $*"; FAILS=$((FAILS + 1)); }
[ -s "$OUT/disk.qcow2" ] || "$HERE/build-debian.sh" "$OUT" || { say "build failed"; exit 1; }
OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/stratus-debian-selftest.XXXXXX"); QPID=
cleanup() { [ -n "$QPID" ] && kill "$QPID" 2>/dev/null; [ "${STRATUS_SELFTEST_KEEP:-0}" = 1 ] && say "kept $W" || rm -rf "$W"; }
trap cleanup EXIT; trap 'exit 130' INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SP=$(port); QMP="$HERE/qmp.py $W/qmp.sock"
ssh-keygen -q -t ed25519 -N '' -f "$W/key"
printf 'instance-id: i-debian-%s\nlocal-hostname: debian-selftest\n' "$$" > "$W/meta-data"
printf '#!/bin/sh\necho STRATUS-DEBIAN-USERDATA-RAN\necho from-user-data > /root/ud\n' > "$W/user-data"
"$HERE/make-config-drive.sh" "$W/config.img" "$W/meta-data" "$W/user-data" "$W/key.pub" || exit 1
qemu-img create -q -f qcow2 -b "$OUT/disk.qcow2" -F qcow2 "$W/vm.qcow2" || exit 1
t0=$(date +%s)
qemu-system-x86_64 -name guest=debian-selftest -machine q35 -accel tcg,tb-size=64 \
    -m 512M,slots=4,maxmem=1G -smp 1,maxcpus=4 \
    -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" -append "$(cat "$OUT/cmdline")" \
    -blockdev driver=file,filename="$W/vm.qcow2",node-name=root-file \
    -blockdev driver=qcow2,file=root-file,node-name=root -device virtio-blk-pci,drive=root \
    -blockdev driver=file,filename="$W/config.img",node-name=cidata-file,read-only=on \
    -blockdev driver=raw,file=cidata-file,node-name=cidata,read-only=on -device virtio-blk-pci,drive=cidata \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$SP-:22 -device virtio-net-pci,netdev=n0,romfile= \
    -device virtio-balloon-pci -device virtio-rng-pci \
    -serial file:"$W/console.log" -qmp unix:"$W/qmp.sock",server=on,wait=off \
    -sandbox on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny,spawn=deny -nographic -nodefaults &
QPID=$!
SSH=(ssh -i "$W/key" -p "$SP" -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1)
ok=0
while [ $(( $(date +%s) - t0 )) -lt "$TIMEOUT" ] && kill -0 "$QPID" 2>/dev/null; do
    if [ "$("${SSH[@]}" cat /root/ud 2>/dev/null)" = from-user-data ]; then ok=1; break; fi
    sleep 3
done
if [ "$ok" = 1 ]; then
    pass "root SSH with the meta-data key; user-data ran"; say "TIME boot_to_userdata_effect_s $(( $(date +%s) - t0 ))"
else
    fail "no SSH/user-data effect within ${TIMEOUT}s"; tail -30 "$W/console.log" >&2; exit 1
fi
grep -qa STRATUS-DEBIAN-USERDATA-RAN "$W/console.log" && pass "user-data output on the console" || fail "user-data output not on the console"
$QMP device_add '{"driver":"qemu64-x86_64-cpu","id":"vcpu1","socket-id":0,"core-id":1,"thread-id":0}' >/dev/null
n=0; for _ in $(seq 1 20); do n=$("${SSH[@]}" nproc 2>/dev/null); [ "$n" = 2 ] && break; sleep 1; done
[ "$n" = 2 ] && pass "hot-added CPU online (nproc=2)" || fail "hot-added CPU: nproc=$n"
t=$(date +%s); $QMP system_powerdown >/dev/null
for _ in $(seq 1 120); do kill -0 "$QPID" 2>/dev/null || break; sleep 1; done
if kill -0 "$QPID" 2>/dev/null; then fail "no poweroff within 120 s of system_powerdown"
else pass "system_powerdown powered it off"; say "TIME powerdown_s $(( $(date +%s) - t ))"; QPID=; fi
[ "$FAILS" = 0 ] && { say "ALL PASSED"; exit 0; }
say "$FAILS check(s) FAILED"; exit 1
