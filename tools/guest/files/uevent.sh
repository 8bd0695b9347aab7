#!/bin/sh
# Called by `busybox uevent` for every kernel uevent (netlink). Onlines hot-added CPUs and
# memory the moment they appear.
case "$ACTION:$SUBSYSTEM" in
    add:cpu|add:memory|online:cpu) . /etc/stratus/online.sh ;;
esac
