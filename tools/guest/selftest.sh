#!/usr/bin/env bash
# Boot the tiny guest under QEMU exactly as the Stratus QEMU driver does and check what the guest
# promises: ready marker, user-data, HTTP page, SSH with a key, CPU and memory hot-add, ACPI
# power-off, /data and host key surviving a power cycle of the same overlay.
#
#   tools/guest/selftest.sh [OUTDIR]     (or env STRATUS_GUEST_OUT; default tools/guest/out/tiny)
#
# Builds the guest first if an output is missing. Exits 0 when every check passed, 1 otherwise.
# Always kills the QEMU processes it started (trap). Timings are printed on stderr as `TIME name s`.
# Env: STRATUS_SELFTEST_KEEP=1 keeps the work directory (console logs) for inspection.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-${STRATUS_GUEST_OUT:-$HERE/out/tiny}}
READY_TIMEOUT=${STRATUS_SELFTEST_READY_TIMEOUT:-60}

say() { echo "[guest-selftest] $*" >&2; }
FAILS=0
pass() { say "PASS $*"; }
fail() { say "FAIL $*"; FAILS=$((FAILS + 1)); }
now() { date +%s.%N; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }

# --- host tools -----------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v curl >/dev/null || need+=(curl)
command -v ssh >/dev/null || need+=(openssh-client)
command -v python3 >/dev/null || need+=(python3)
command -v bc >/dev/null || need+=(bc)
PATH=$PATH:/sbin:/usr/sbin command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v mcopy >/dev/null || need+=(mtools)
if ((${#need[@]})); then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2 || { say "apt-get install failed"; exit 1; }
fi

for f in vmlinuz initrd.img cmdline disk.qcow2 manifest.json; do
    if [ ! -s "$OUT/$f" ]; then
        say "building the guest into $OUT"
        "$HERE/build.sh" "$OUT" || { say "build failed"; exit 1; }
        break
    fi
done
OUT=$(cd "$OUT" && pwd)
"$HERE/test-parse-meta.sh" "$OUT" && pass "meta-data reader cases (test-parse-meta.sh)" || fail "meta-data reader cases"

W=$(mktemp -d "${TMPDIR:-/tmp}/stratus-guest-selftest.XXXXXX")
QPID=
cleanup() {
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
        kill "$QPID" 2>/dev/null; sleep 0.5; kill -9 "$QPID" 2>/dev/null
    fi
    if [ "${STRATUS_SELFTEST_KEEP:-0}" = 1 ]; then say "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HP=$(free_port); SP=$(free_port)
QMP="$HERE/qmp.py $W/qmp.sock"
IID=i-selftest-$$

# --- config drive -----------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C selftest -f "$W/key"
printf 'instance-id: %s\nlocal-hostname: selftest\n' "$IID" > "$W/meta-data"
cat > "$W/user-data" <<'UD'
#!/bin/sh
echo "user-data running as $(id -u) for $STRATUS_INSTANCE_ID"
echo "boot $(cat /proc/sys/kernel/random/boot_id)" >> /data/boots
echo from-user-data > /data/ud
UD
"$HERE/make-config-drive.sh" "$W/config.img" "$W/meta-data" "$W/user-data" "$W/key.pub" || { say "config drive failed"; exit 1; }
qemu-img create -q -f qcow2 -b "$OUT/disk.qcow2" -F qcow2 "$W/vm.qcow2" || exit 1

SSH=(ssh -i "$W/key" -p "$SP" -o BatchMode=yes -o ConnectTimeout=10 -o UserKnownHostsFile="$W/known_hosts"
     -o LogLevel=ERROR root@127.0.0.1)

# The exact QEMU invocation the driver uses (see docs/guest.md).
boot() { # $1 = console log name
    rm -f "$W/qmp.sock"
    qemu-system-x86_64 -name "guest=$IID" -machine q35 -accel tcg,tb-size=64 \
        -m 256M,slots=4,maxmem=1G -smp 1,maxcpus=4 \
        -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" -append "$(cat "$OUT/cmdline")" \
        -blockdev driver=file,filename="$W/vm.qcow2",node-name=root-file \
        -blockdev driver=qcow2,file=root-file,node-name=root \
        -device virtio-blk-pci,drive=root,id=root-disk \
        -blockdev driver=file,filename="$W/config.img",node-name=cidata-file,read-only=on \
        -blockdev driver=raw,file=cidata-file,node-name=cidata,read-only=on \
        -device virtio-blk-pci,drive=cidata,id=cidata-disk \
        -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$HP-:80,hostfwd=tcp:127.0.0.1:$SP-:22 \
        -device virtio-net-pci,netdev=n0,romfile= \
        -device virtio-balloon-pci,id=balloon0 -device virtio-rng-pci,id=rng0 \
        -serial file:"$W/$1" -qmp unix:"$W/qmp.sock",server=on,wait=off \
        -sandbox on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny,spawn=deny \
        -nographic -nodefaults &
    QPID=$!
}
wait_console() { # $1 log, $2 pattern, $3 timeout s
    local end; end=$(echo "$(now) + $3" | bc)
    while [ "$(echo "$(now) < $end" | bc)" = 1 ]; do
        grep -qa -- "$2" "$W/$1" 2>/dev/null && return 0
        kill -0 "$QPID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
page() { curl -sf -m 5 "http://127.0.0.1:$HP/"; }
page_field() { page | sed -n "s/^$1=//p"; }
wait_field() { # $1 field, $2 shell test on $v, $3 timeout s
    local end v; end=$(echo "$(now) + $3" | bc)
    while [ "$(echo "$(now) < $end" | bc)" = 1 ]; do
        v=$(page_field "$1"); if [ -n "$v" ] && eval "$2"; then echo "$v"; return 0; fi
        sleep 0.2
    done
    echo "$v"; return 1
}
powerdown() { # $1 label; ACPI power button, QEMU must exit by itself
    local t; t=$(now)
    $QMP system_powerdown >/dev/null || { fail "$1: system_powerdown rejected"; return; }
    for _ in $(seq 1 300); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$QPID" 2>/dev/null; then
        fail "$1: guest did not power off within 30 s of system_powerdown"
        kill "$QPID"; wait "$QPID" 2>/dev/null
    else
        wait "$QPID" 2>/dev/null
        pass "$1: system_powerdown powered the guest off"; say "TIME powerdown_s $(since "$t")"
    fi
    QPID=
}

# --- boot 1: fresh overlay (the guest formats /data) -----------------------------------------------
t=$(now); boot console1.log
if wait_console console1.log "STRATUS-GUEST-READY id=$IID" "$READY_TIMEOUT"; then
    pass "boot 1: ready marker with the instance id"; say "TIME boot1_ready_s $(since "$t") (first boot, formats /data)"
else
    fail "boot 1: no ready marker within ${READY_TIMEOUT}s"; tail -20 "$W/console1.log" >&2; exit 1
fi
for _ in $(seq 1 100); do page >/dev/null && break; sleep 0.05; done
say "TIME boot1_http_s $(since "$t")"
wait_console console1.log "STRATUS-USERDATA-DONE rc=0" 30 && pass "user-data ran (rc=0 marker)" || fail "no STRATUS-USERDATA-DONE rc=0"
grep -qa "user-data running as 0 for $IID" "$W/console1.log" && pass "user-data output on the serial console" \
    || fail "user-data output missing on the console"

p1=$(page)
if printf '%s\n' "$p1" | grep -qxE "id=$IID" && [ "$(printf '%s\n' "$p1" | sed -n 2p)" = cpus=1 ] \
   && printf '%s\n' "$p1" | sed -n 3p | grep -qxE 'mem_kib=[0-9]+' \
   && printf '%s\n' "$p1" | sed -n 4p | grep -qxE 'uptime_s=[0-9]+' && [ "$(printf '%s\n' "$p1" | wc -l)" = 4 ]; then
    pass "HTTP page: $(echo $p1)"
else
    fail "HTTP page wrong: $p1"
fi
ctype=$(curl -s -m 5 -o /dev/null -w '%{content_type}' "http://127.0.0.1:$HP/")
[ "${ctype%%;*}" = text/plain ] && pass "content type text/plain" || fail "content type $ctype"
u1=$(page_field uptime_s); sleep 1.2; u2=$(page_field uptime_s)
[ -n "$u1" ] && [ -n "$u2" ] && [ "$u2" -gt "$u1" ] && pass "page rebuilt per request (uptime $u1 -> $u2)" \
    || fail "uptime did not advance ($u1 -> $u2)"

t=$(now)
if [ "$("${SSH[@]}" -o StrictHostKeyChecking=accept-new cat /data/ud 2>&1)" = from-user-data ]; then
    pass "ssh with the metadata key: cat /data/ud"; say "TIME ssh_cmd_s $(since "$t")"
else
    fail "ssh cat /data/ud failed"
fi
TOKEN=token-$RANDOM-$$
"${SSH[@]}" "echo $TOKEN > /data/x && sync" && pass "ssh wrote /data/x" || fail "ssh could not write /data/x"
"${SSH[@]}" -o PasswordAuthentication=no -i /dev/null true 2>/dev/null; true

# CPU hot-add
ctype=$($QMP query-hotpluggable-cpus | python3 -c 'import json,sys; c=[x for x in json.load(sys.stdin) if "qom-path" not in x]; print(c[-1]["type"] if c else "")')
t=$(now)
if [ -n "$ctype" ] && $QMP device_add "{\"driver\":\"$ctype\",\"id\":\"vcpu1\",\"socket-id\":0,\"core-id\":1,\"thread-id\":0}" >/dev/null; then
    if v=$(wait_field cpus '[ "$v" = 2 ]' 20); then
        pass "CPU hot-add ($ctype core-id=1) -> cpus=$v"; say "TIME cpu_hotadd_visible_s $(since "$t")"
    else fail "CPU hot-added but page says cpus=$v"; fi
else
    fail "device_add $ctype failed"
fi

# memory hot-add (256 MiB pc-dimm)
m1=$(page_field mem_kib); t=$(now)
if $QMP object-add '{"qom-type":"memory-backend-ram","id":"mem1","size":268435456}' \
        device_add '{"driver":"pc-dimm","id":"dimm1","memdev":"mem1"}' >/dev/null; then
    if v=$(wait_field mem_kib "[ \"\$v\" -ge $((m1 + 250000)) ]" 20); then
        pass "memory hot-add 256 MiB: mem_kib $m1 -> $v"; say "TIME mem_hotadd_visible_s $(since "$t")"
    else fail "memory hot-added but mem_kib $m1 -> $v"; fi
else
    fail "memory object-add/device_add failed"
fi

powerdown "boot 1"
grep -qa STRATUS-GUEST-POWEROFF "$W/console1.log" && grep -qa STRATUS-GUEST-HALTED "$W/console1.log" \
    && pass "guest logged the ACPI power button and a clean halt" || fail "no power button / halt marker in console"

# --- boot 2: same overlay ----------------------------------------------------------------------
t=$(now); boot console2.log
if wait_console console2.log "STRATUS-GUEST-READY id=$IID" "$READY_TIMEOUT"; then
    pass "boot 2: ready"; say "TIME boot2_ready_s $(since "$t") (second boot, /data already formatted)"
else
    fail "boot 2: no ready marker"; tail -20 "$W/console2.log" >&2; exit 1
fi
grep -qa "formatting blank" "$W/console2.log" && fail "boot 2 reformatted /data" || pass "boot 2 kept the /data filesystem"
# StrictHostKeyChecking=yes with boot 1's known_hosts: fails if the host key changed.
got=$("${SSH[@]}" -o StrictHostKeyChecking=yes cat /data/x 2>&1)
[ "$got" = "$TOKEN" ] && pass "/data/x survived poweroff+boot, same SSH host key" || fail "/data/x after reboot: '$got'"
wait_console console2.log "STRATUS-USERDATA-DONE rc=0" 30 && \
    [ "$("${SSH[@]}" -o StrictHostKeyChecking=yes 'grep -c ^boot /data/boots')" = 2 ] \
    && pass "user-data ran once per boot (2 boots recorded)" || fail "user-data boot count wrong"
# soft reboot: Ctrl-Alt-Del over QMP -> busybox init reboots cleanly; QEMU stays up (same process).
t=$(now)
$QMP send-key '{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}' >/dev/null
end=$(echo "$(now) + $READY_TIMEOUT" | bc); n=1
while [ "$(echo "$(now) < $end" | bc)" = 1 ] && kill -0 "$QPID" 2>/dev/null; do
    n=$(grep -ac "STRATUS-GUEST-READY id=$IID" "$W/console2.log"); [ "$n" -ge 2 ] && break; sleep 0.1
done
if [ "$n" -ge 2 ] && grep -qa "Requesting system reboot" "$W/console2.log"; then
    pass "soft reboot (send-key ctrl-alt-delete) came back ready"; say "TIME soft_reboot_to_ready_s $(since "$t")"
    got=$("${SSH[@]}" -o StrictHostKeyChecking=yes cat /data/x 2>&1)
    [ "$got" = "$TOKEN" ] && pass "/data/x after soft reboot" || fail "/data/x after soft reboot: '$got'"
else
    fail "soft reboot did not come back (ready markers: $n)"
fi
powerdown "boot 2"

if [ "$FAILS" = 0 ]; then say "ALL PASSED"; exit 0; fi
say "$FAILS check(s) FAILED"; exit 1
