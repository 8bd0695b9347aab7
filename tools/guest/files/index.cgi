#!/bin/sh
# Status page, rebuilt on every request (busybox httpd runs this for "/" and /cgi-bin/index.cgi).
read -r id < /run/stratus/instance-id 2>/dev/null || id=unknown
cpus=0
while read -r k _; do [ "$k" = processor ] && cpus=$((cpus + 1)); done < /proc/cpuinfo
mem=0
while read -r k v _; do [ "$k" = MemTotal: ] && { mem=$v; break; }; done < /proc/meminfo
read -r up _ < /proc/uptime
printf 'Content-Type: text/plain\r\nCache-Control: no-store\r\n\r\n'
printf 'id=%s\ncpus=%s\nmem_kib=%s\nuptime_s=%s\n' "$id" "$cpus" "$mem" "${up%%.*}"
