#!/usr/bin/env bash
# Boots the sm-runc guest kernel under qemu -M microvm with a one-file test
# initramfs (init.c in this directory) and reports the wall time until the
# init's "SMRUNC-INIT uptime:" line. This is the qemu baseline for the VMM's
# own boot-time measurements (see guest/README.md).
#
# usage: guest/test-init/run-qemu.sh [kvm|tcg] [extra kernel args...]
#   VMLINUX=path   kernel (default: the output of scripts/build-kernel.sh)
#   MEM=128M       guest memory
#   EMU=0          leave out the nested-emulation-only kernel arguments
#   TIMEOUT=300    seconds
# Extra kernel args: e.g. `info` (print /proc/interrupts and the clocksource),
# `dumplog initcall_debug log_buf_len=1M` (print the kernel log).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
mode=${1:-kvm}; shift || true
VMLINUX=${VMLINUX:-$("$REPO/scripts/build-kernel.sh")}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -static -Os -Wall -o "$work/init" "$HERE/init.c"
strip "$work/init"
mkdir -p "$work/root/dev" "$work/root/proc" "$work/root/sys"
cp "$work/init" "$work/root/init"
mknod "$work/root/dev/console" c 5 1
(cd "$work/root" && find . | cpio -o -H newc --quiet > "$work/test.cpio")

# Recommended base command line (guest/README.md).
append="console=hvc0 quiet panic=-1 reboot=t noreplace-smp percpu_alloc=page tsc=reliable"
case $mode in
  kvm)
    # Only for nested, emulating KVM (guest/README.md): FPU/CPU features
    # the emulator cannot run, and no W^X pass over the kernel image.
    if [[ ${EMU:-1} == 1 ]]; then
      append+=" noxsave rodata=off clearcpuid=popcnt,cx16,movbe,smap,smep,fsgsbase,pcid,invpcid,rdrand,rdseed,rdpid,pku,umip,avx,avx2,bmi1,bmi2,erms,fsrm,la57"
    fi
    machine=microvm,x-option-roms=off,isa-serial=off,rtc=off,pit=off,pic=off,acpi=off
    accel=(-enable-kvm -cpu host,-arch-capabilities)
    ;;
  tcg)
    # Without KVM there is no kvmclock: the kernel calibrates the TSC and
    # the LAPIC timer against the PIT, so keep microvm's PIT and PIC.
    machine=microvm,x-option-roms=off,isa-serial=off,rtc=off,acpi=off
    accel=(-accel tcg -cpu max)
    ;;
  *) echo "usage: $0 [kvm|tcg] [kernel args...]" >&2; exit 2 ;;
esac
append+=" $*"

echo "kernel: $VMLINUX" >&2
echo "append: $append" >&2
start=$(date +%s%N)
timeout "${TIMEOUT:-300}" qemu-system-x86_64 -M "$machine" "${accel[@]}" \
  -m "${MEM:-128M}" -smp 1 -nodefaults -no-user-config -nographic -no-reboot \
  -kernel "$VMLINUX" -initrd "$work/test.cpio" \
  -device virtio-serial-device,max_ports=1 -chardev stdio,id=con0 \
  -device virtconsole,chardev=con0 -append "$append" |
  while IFS= read -r line; do
    now=$(date +%s%N)
    printf '[wall %7.3f] %s\n' "$(( (now - start) / 1000000 ))e-3" "$line"
  done
echo "qemu exited after $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
