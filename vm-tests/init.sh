#!/bin/busybox sh
# The guest's /init: mounts the pseudo filesystems, runs the scenario runner as root and powers
# the machine off. Console output (the runner's log) goes to ttyS0, results to ttyS1. A failing
# step before the runner ends /init, which the kernel's `panic=-1` turns into the guest's exit.
set -euo pipefail
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /run
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t tmpfs tmpfs /tmp
# Every applet goes into /bin; there is no /sbin/modprobe, so the kernel cannot load a module on
# its own: the runner decides what is loaded, and when.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin HOME=/root TZ=UTC
status=0
/bin/xtask vm-guest /vm/config.json >/dev/ttyS0 2>&1 || status=$?
echo "runner exited with $status" >/dev/ttyS0
sync
poweroff -f
