#!/usr/bin/env bash
# Boots "L1", a Linux whose /dev/kvm is KVM's hardware backend (AMD-V/SVM with nested
# paging), and runs a job script in it, so sm-runc can be tested on the KVM users have
# as well as on the emulating, nested KVM (kvm_pvm) of the build machines.
#
# How: qemu's software CPU (TCG) emulates an EPYC CPU with SVM and NPT; Debian's own
# kernel (linux-image-amd64, fetched with apt-get download) boots under it from a small
# busybox initramfs that loads 9p, virtio-pci and kvm_amd, mounts this machine's / read-only
# over 9p (/tmp and /run are tmpfs there, cgroup2 at /sys/fs/cgroup) and chroots into it, so
# the binaries built here run unchanged. WORK is writable at /mnt inside; the job is
# `bash /mnt/JOB`. Everything in L1 runs at software-CPU speed: compare figures only
# within one L1 run.
#
# usage: scripts/hwkvm/l1.sh WORK JOB [VAR=VALUE...]   (VARs reach the job's environment)
# env:   SM_RUNC_HWKVM_SMP (2), SM_RUNC_HWKVM_MEM_MIB (4096), SM_RUNC_HWKVM_TIMEOUT (900 s)
# The kernel and initramfs are cached in ${SM_RUNC_CACHE:-/var/cache/sm-runc}/hwkvm/<key>,
# key = sha256 of this script and the kernel package's name and version.
set -euo pipefail
work=$(cd "${1:?usage: l1.sh WORK JOB [VAR=VALUE...]}" && pwd); job=${2:?usage: l1.sh WORK JOB}; shift 2
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$work/$job" ] || { echo "hwkvm: no job script $work/$job" >&2; exit 2; }
for v in "$@"; do case "$v" in *=*) ;; *) echo "hwkvm: want VAR=VALUE, got '$v'" >&2; exit 2;; esac; done
[ -e /dev/kvm ] || true   # L1 does not need /dev/kvm here: it is TCG
command -v qemu-system-x86_64 >/dev/null && [ -x /bin/busybox ] || bash "$here/../setup-deps.sh" >&2

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6/{print $2; exit}')
if [ -z "$pkg" ]; then apt-get update -qq >&2; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6/{print $2; exit}'); fi
[ -n "$pkg" ] || { echo "hwkvm: Debian's linux-image-amd64 names no kernel package" >&2; exit 1; }
version=$(apt-cache policy "$pkg" | awk '/Candidate:/{print $2}')
key=$( { sha256sum "$here/l1.sh" | cut -d' ' -f1; echo "$pkg $version"; } | sha256sum | cut -c1-16)
cache=${SM_RUNC_CACHE:-/var/cache/sm-runc}/hwkvm
entry=$cache/$key
# tun, veth and the tc pieces: the container's network (a tap wired to a veth with
# ingress qdiscs and u32 + mirred redirects, scripts/hwkvm/suite.sh case 8).
modules="9pnet_virtio 9p virtio_pci kvm-amd tun veth sch_ingress cls_u32 act_mirred"
if [ ! -f "$entry/initrd.gz" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.tmp-$key.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/pkg" "$tmp/ir/bin" "$tmp/ir/mod" "$tmp/ir"/{proc,sys,dev,host}
  (cd "$tmp/pkg" && apt-get download "$pkg=$version" >/dev/null 2>&1) || { echo "hwkvm: apt-get download $pkg=$version failed" >&2; exit 1; }
  dpkg-deb -x "$tmp"/pkg/*.deb "$tmp/x"
  cp "$tmp"/x/boot/vmlinuz-* "$tmp/vmlinuz"
  # The modules wanted and those they depend on (modinfo's depends=), in load order.
  order=""
  need() {
    local f d; f=$(find "$tmp/x/lib/modules" -name "$1.ko" | head -1)
    [ -n "$f" ] || { echo "hwkvm: $pkg has no module $1" >&2; exit 1; }
    case " $order " in *" $1 "*) return;; esac
    for d in $(strings "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do need "$d"; done
    order="$order $1"; cp "$f" "$tmp/ir/mod/"
  }
  for m in $modules; do need "$m"; done
  cp /bin/busybox "$tmp/ir/bin/"
  cat > "$tmp/ir/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $order; do insmod /mod/\$m.ko || echo "hwkvm: insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 host /host || echo "hwkvm: 9p mount of / failed"
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t devpts devpts /host/dev/pts 2>/dev/null; mkdir -p /host/dev/shm; mount -t tmpfs tmpfs /host/dev/shm
mount -t tmpfs tmpfs /host/tmp; mount -t tmpfs tmpfs /host/run; mount -t tmpfs tmpfs /host/var/tmp
mount -t cgroup2 none /host/sys/fs/cgroup
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work /host/mnt
echo "hwkvm: L1 up at \$(cut -d' ' -f1 /proc/uptime) s; \$(dmesg | grep -o 'SVM: kvm: Nested Paging enabled'); kvm: \$(ls /dev/kvm)"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
chroot /host /bin/bash /mnt/\$HWKVM_JOB
echo "hwkvm: job exit \$?"
poweroff -f
INIT
  chmod +x "$tmp/ir/init"
  (cd "$tmp/ir" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$tmp/initrd.gz")
  rm -rf "$tmp/x" "$tmp/pkg" "$tmp/ir"
  rm -rf "$entry"; mv "$tmp" "$entry"; trap - EXIT
  # Older entries of this cache are of other kernels or of other versions of this script.
  find "$cache" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
fi
# The job's exit status comes back as the `hwkvm: job exit N` line. Every filter is
# line-buffered (sed -u, grep --line-buffered; mawk would hold the lines until the end),
# so a CI log shows the job's progress as it goes, and where it stopped if it hangs.
out=$(mktemp); trap 'rm -f "$out"' EXIT
timeout "${SM_RUNC_HWKVM_TIMEOUT:-900}" qemu-system-x86_64 -M q35 -accel tcg -cpu EPYC,+svm,+npt \
  -m "${SM_RUNC_HWKVM_MEM_MIB:-4096}" -smp "${SM_RUNC_HWKVM_SMP:-2}" -nographic -no-reboot \
  -kernel "$entry/vmlinuz" -initrd "$entry/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 HWKVM_JOB=$job $*" \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap \
  -virtfs "local,path=$work,mount_tag=work,security_model=passthrough" 2>&1 \
  | sed -u 's/\r$//' | grep --line-buffered -v -e 'warning: TCG doesn' -e '^\s*$' \
  | sed -u -n '/hwkvm: L1 up/,$ {p;b}; /hwkvm:/p' | tee "$out" || true
status=$(sed -n 's/^hwkvm: job exit \([0-9]*\)$/\1/p' "$out" | tail -1)
[ -n "$status" ] || { echo "hwkvm: L1 ended without the job's status (timeout ${SM_RUNC_HWKVM_TIMEOUT:-900} s?)" >&2; exit 124; }
exit "$status"
