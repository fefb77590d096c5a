#!/usr/bin/env bash
# Fills <bundle>/rootfs with a static busybox (Debian's busybox-static) and its
# applets: enough for the example bundles and the tests. Idempotent.
# Usage: scripts/make-rootfs.sh config-examples/hello
set -euo pipefail
bundle=${1:?usage: make-rootfs.sh BUNDLE}
rootfs="$bundle/rootfs"
[ -x /bin/busybox ] || bash "$(dirname "$0")/setup-deps.sh"
mkdir -p "$rootfs"/{bin,dev,proc,sys,tmp,etc,root}
cp -f /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sfn busybox "$rootfs/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
echo "root:x:0:" > "$rootfs/etc/group"
