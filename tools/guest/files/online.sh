#!/bin/sh
# Online every offline CPU and memory block (hot-added ones included). Idempotent, cheap:
# only shell builtins apart from the writes.
for f in /sys/devices/system/cpu/cpu[0-9]*/online /sys/devices/system/memory/memory*/online; do
    [ -e "$f" ] || continue
    read -r v < "$f" 2>/dev/null || continue
    if [ "$v" = 0 ]; then
        echo 1 > "$f" 2>/dev/null && echo "stratus: onlined ${f%/online}" > /dev/console
    fi
done
