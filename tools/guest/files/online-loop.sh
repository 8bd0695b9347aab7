#!/bin/sh
# Safety net behind the uevent hook: re-check every 2 s for offline CPUs / memory blocks.
while :; do
    . /etc/stratus/online.sh
    sleep 2
done
