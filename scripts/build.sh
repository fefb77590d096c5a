#!/usr/bin/env bash
# Builds sm-runc and everything a boot needs, on a fresh Debian 12 machine:
# Debian packages, the Swift products, the guest kernel (cached by content hash,
# see scripts/build-kernel.sh) and the stripped static guest agent. Puts the
# guest files in <bin>/sm-runc-guest/, where sm-runc looks for them, and prints
# <bin> on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

bash scripts/setup-deps.sh >&2
swift build >&2
bin=$(swift build --show-bin-path)
kernel=$(bash scripts/build-kernel.sh)

guest="$bin/sm-runc-guest"
mkdir -p "$guest"
# The agent is read by an emulated guest kernel (paged in from the guest root
# share, or copied out of an initramfs at ~1 s per MB here): build it small, in
# its own scratch directory (optimised for size, unused sections dropped), and strip it.
swift build -c release --scratch-path .build-guest --product sm-init -Xswiftc -Osize -Xlinker --gc-sections >&2
agent=$(swift build -c release --scratch-path .build-guest --show-bin-path)/sm-init
strip -o "$guest/sm-init.tmp" "$agent"
mv -f "$guest/sm-init.tmp" "$guest/sm-init"
# The guest's own root, shared read-only with virtio-fs (the agent is then paged in
# on demand instead of unpacked from an initramfs).
mkdir -p "$guest/root"/{dev,proc,sys,run,tmp}
cp -f "$guest/sm-init" "$guest/root/sm-init.tmp" && mv -f "$guest/root/sm-init.tmp" "$guest/root/sm-init"
ln -sfn "$kernel" "$guest/vmlinux"
if [ -f "$(dirname "$kernel")/System.map" ]; then
  ln -sfn "$(dirname "$kernel")/System.map" "$guest/System.map"
fi
echo "$bin"
