#!/usr/bin/env bash
# Builds the sm-runc guest kernel (an uncompressed, unstripped vmlinux ELF
# with a PVH entry note) from Debian's linux-source-6.1, with
# guest/kernel.config applied on top of `make tinyconfig` and
# guest/patches/*.patch applied in name order.
#
# The result is cached outside the repository, by content hash:
#   ${SM_RUNC_CACHE:-/var/cache/sm-runc}/kernel/<key>/{vmlinux,config,System.map,build.log,inputs}
# where <key> = sha256 over the fragment, the patches (names and contents),
# this script and the installed linux-source-6.1 package version.
# A run whose entry exists prints its path at once.
#
# stdout: ONLY the path of vmlinux. Everything else goes to stderr, and the
# build output also to build.log in the cache entry.
#
# Robustness: the build runs in a temporary directory next to the cache
# entries and the finished entry is renamed into place (atomic), under a
# per-key lock; an interrupted build leaves no entry (stale temporary
# directories are removed by the next build of the same key).
#
# Environment:
#   SM_RUNC_CACHE          cache root (default /var/cache/sm-runc)
#   SM_RUNC_KERNEL_JOBS    make -j value (default 2)
#   SM_RUNC_KERNEL_KEEP=1  keep the build tree (printed on stderr)
# Options:
#   --rebuild   ignore (and replace) an existing cache entry
#   --key       print the cache key and exit
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/scripts/build-kernel.sh
FRAGMENT=$REPO/guest/kernel.config
PATCH_DIR=$REPO/guest/patches
SRC_PKG=linux-source-6.1
SRC_TARBALL=/usr/src/linux-source-6.1.tar.xz
CACHE_DIR=${SM_RUNC_CACHE:-/var/cache/sm-runc}/kernel
JOBS=${SM_RUNC_KERNEL_JOBS:-2}

# Options that must be built in (=y) in the final .config; the build fails
# otherwise. (Every line of the fragment is checked as well, below.)
MUST_HAVE=(
  64BIT SMP X86_MPPARSE HYPERVISOR_GUEST PARAVIRT KVM_GUEST PARAVIRT_CLOCK PVH
  PRINTK EARLY_PRINTK TTY UNIX98_PTYS HVC_DRIVER VIRTIO_CONSOLE
  VIRTIO VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES VIRTIO_BALLOON PAGE_REPORTING
  BLOCK VIRTIO_BLK NET UNIX INET NETDEVICES VIRTIO_NET VSOCKETS VIRTIO_VSOCKETS
  EXT4_FS OVERLAY_FS FUSE_FS VIRTIO_FS TMPFS SHMEM DEVTMPFS DEVTMPFS_MOUNT
  PROC_FS SYSFS
  NAMESPACES UTS_NS IPC_NS PID_NS NET_NS USER_NS
  CGROUPS MEMCG CGROUP_SCHED CGROUP_PIDS CGROUP_DEVICE CGROUP_FREEZER
  SECCOMP SECCOMP_FILTER POSIX_MQUEUE BLK_DEV_INITRD BINFMT_ELF BINFMT_SCRIPT
  FUTEX EPOLL EVENTFD SIGNALFD TIMERFD MULTIUSER FHANDLE POSIX_TIMERS
)
# Options that must be off.
MUST_NOT=(
  MODULES PCI ACPI EFI DMI SERIAL_8250 SERIO INPUT VT RTC_CLASS HPET
  IA32_EMULATION MICROCODE DEBUG_INFO RD_GZIP RD_BZIP2 RD_LZMA RD_XZ RD_LZO
  RD_LZ4 RD_ZSTD USB_SUPPORT SOUND PARPORT BLK_DEV_FD
)

log() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

rebuild=0
case "${1:-}" in
  "") ;;
  --rebuild) rebuild=1 ;;
  --key) ;;
  *) die "usage: $0 [--rebuild|--key]" ;;
esac

"$REPO/scripts/setup-deps.sh" >&2

[[ -f $FRAGMENT ]] || die "missing $FRAGMENT"
[[ -f $SRC_TARBALL ]] || die "missing $SRC_TARBALL (package $SRC_PKG)"
pkgver=$(dpkg-query -W -f='${Version}' "$SRC_PKG")
shopt -s nullglob
patches=("$PATCH_DIR"/*.patch)
shopt -u nullglob

key=$(
  {
    printf 'fragment\n'; cat "$FRAGMENT"
    for p in "${patches[@]}"; do printf '\npatch %s\n' "${p##*/}"; cat "$p"; done
    printf '\nscript\n'; cat "$SELF"
    printf '\n%s %s\n' "$SRC_PKG" "$pkgver"
  } | sha256sum | cut -d' ' -f1
)
if [[ ${1:-} == --key ]]; then echo "$key"; exit 0; fi

entry=$CACHE_DIR/$key
if ((!rebuild)) && [[ -f $entry/vmlinux ]]; then
  log "cached: $entry"
  echo "$entry/vmlinux"
  exit 0
fi

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock-$key"
if ! flock -n 9; then
  log "another build of $key is running; waiting for it"
  flock 9
fi
if ((!rebuild)) && [[ -f $entry/vmlinux ]]; then
  log "cached (built by a concurrent run): $entry"
  echo "$entry/vmlinux"
  exit 0
fi

# We hold the lock: any temporary directory of this key is left over from an
# interrupted build.
rm -rf "$CACHE_DIR/.tmp-$key".*
tmp=$(mktemp -d "$CACHE_DIR/.tmp-$key.XXXXXX")
out=$tmp/out
src=$tmp/src
mkdir -p "$out" "$src"
buildlog=$out/build.log
# Long steps (tar, make) run in their own process group, in the background,
# so that an interrupt reaches the trap at once and stops the whole step.
child=
run() {
  setsid "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=
  return "$rc"
}
cleanup() {
  local rc=$?
  if [[ -n $child ]]; then
    kill -TERM -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -f $buildlog ]]; then
    cp -f "$buildlog" "$CACHE_DIR/failed-$key.log" 2>/dev/null &&
      log "build failed (rc=$rc); log: $CACHE_DIR/failed-$key.log"
  fi
  if [[ ${SM_RUNC_KERNEL_KEEP:-0} == 1 && -d $src ]]; then
    local keep=$CACHE_DIR/.keep-$key
    rm -rf "$keep"; mv "$src" "$keep" && log "build tree kept: $keep"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Everything from here on goes to stderr and to build.log; fd 3 is stdout.
exec 3>&1
exec > >(tee -a "$buildlog" >&2) 2>&1

t0=$SECONDS
log "key $key"
log "inputs: $FRAGMENT, ${#patches[@]} patch(es), $SELF, $SRC_PKG $pkgver"
{
  echo "key=$key"
  echo "source=$SRC_TARBALL ($SRC_PKG $pkgver)"
  echo "fragment=$(sha256sum < "$FRAGMENT" | cut -d' ' -f1) guest/kernel.config"
  for p in "${patches[@]}"; do echo "patch=$(sha256sum < "$p" | cut -d' ' -f1) guest/patches/${p##*/}"; done
  echo "script=$(sha256sum < "$SELF" | cut -d' ' -f1) scripts/build-kernel.sh"
  echo "gcc=$(gcc --version | head -n1)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$out/inputs"

log "extracting $SRC_TARBALL"
run tar -xf "$SRC_TARBALL" -C "$src" --strip-components=1
cd "$src"

for p in "${patches[@]}"; do
  log "applying ${p##*/}"
  patch -p1 --forward --batch --no-backup-if-mismatch < "$p"
done

# Reproducible-ish build metadata (uname -v).
export KBUILD_BUILD_USER=sm-runc KBUILD_BUILD_HOST=sm-runc
KBUILD_BUILD_TIMESTAMP="$(date -u -d "@$(stat -c %Y "$SRC_TARBALL")")"
export KBUILD_BUILD_TIMESTAMP
MAKE=(make ARCH=x86_64 -j"$JOBS")

log "configuring: tinyconfig + guest/kernel.config"
cp "$FRAGMENT" kernel/configs/sm-runc.config
run "${MAKE[@]}" tinyconfig
run "${MAKE[@]}" sm-runc.config

log "checking the final .config"
bad=0
for o in "${MUST_HAVE[@]}"; do
  grep -qx "CONFIG_$o=y" .config || { log "MUST_HAVE CONFIG_$o is not =y"; bad=1; }
done
for o in "${MUST_NOT[@]}"; do
  if grep -q "^CONFIG_$o=" .config; then log "MUST_NOT CONFIG_$o is set"; bad=1; fi
done
# Every option of the fragment must have the value the fragment asks for
# (Kconfig silently drops what it cannot satisfy).
while IFS= read -r line; do
  if [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
    o=${BASH_REMATCH[1]}
    if grep -q "^$o=" .config; then log "fragment wants $o off, got: $(grep "^$o=" .config)"; bad=1; fi
  elif [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)= ]]; then
    grep -qxF "$line" .config || {
      o=${BASH_REMATCH[1]}
      log "fragment wants $line, got: $(grep -E "^$o=|^# $o is not set" .config || echo '(absent)')"
      bad=1
    }
  fi
done < "$FRAGMENT"
((bad == 0)) || die "configuration check failed"

log "building vmlinux with ${MAKE[*]}"
run "${MAKE[@]}" vmlinux

# The PVH entry note must be there, or the VMM/qemu cannot boot the ELF.
readelf -nW vmlinux | grep -q 'Xen .*(0x00000012)' ||
  die "vmlinux has no XEN_ELFNOTE_PHYS32_ENTRY (PVH) note"

cp vmlinux "$out/vmlinux"
cp .config "$out/config"
cp System.map "$out/System.map"
echo "vmlinux_sha256=$(sha256sum < vmlinux | cut -d' ' -f1)" >> "$out/inputs"
echo "kernelrelease=$("${MAKE[@]}" -s kernelrelease)" >> "$out/inputs"
cd /

rm -rf "$entry.old"
[[ -e $entry ]] && mv -T "$entry" "$entry.old"   # only with --rebuild
mv -T "$out" "$entry"
rm -rf "$entry.old"
log "done in $((SECONDS - t0)) s: $entry"
echo "$entry/vmlinux" >&3
