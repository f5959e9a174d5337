#!/usr/bin/env bash
# PID 1 of a test sandbox (see `Sandbox` in common.rs), started as
#   nsenter --net=HOST unshare --mount --pid --fork --mount-proc \
#       --propagation private --kill-child sandbox-init.sh CONF_DIR BIN_DIR WORK
# Replaces, in this mount namespace only, the paths real clients hard-code:
#   /etc/cni/net.d  -> CONF_DIR            (ctr reads configs only there)
#   /opt/cni/bin    -> BIN_DIR             (ctr finds plugins only there)
#   /var/lib        -> overlay, writes in WORK/varlib (libcni's cache and
#                      host-local's leases, /var/lib/cni, land there)
#   /run, /dev/shm  -> fresh tmpfs         (shim sockets, runc and podman
#                      state, podman's locks)
# then prints "ready" and reaps orphans until it is killed, which kills
# everything started in the sandbox.
set -euo pipefail
conf_dir=$1 bin_dir=$2 work=$3

[ "$$" -eq 1 ] || { echo "sandbox-init.sh: must be PID 1 of a new PID namespace" >&2; exit 2; }

[ -d /etc/cni/net.d ] || { echo "sandbox-init.sh: no /etc/cni/net.d to mount over (containerd or podman installs it: just deps)" >&2; exit 2; }
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mount --bind "$conf_dir" /etc/cni/net.d
mount -t tmpfs tmpfs /opt
mkdir -p /opt/cni/bin
mount --bind "$bin_dir" /opt/cni/bin
mkdir -p "$work/varlib" "$work/varlib.work"
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$work/varlib,workdir=$work/varlib.work" /var/lib

echo ready
exec >/dev/null
# bash reaps every child, also the orphans it adopts as PID 1.
while :; do
  sleep 3600 &
  wait $! || true
done
