#!/usr/bin/env bash
# Installs the Debian packages sm-runc needs to build, test and benchmark.
# Idempotent: packages already present are skipped by apt.
set -euo pipefail
PKGS=(
  # guest kernel build (from Debian's own kernel source package)
  linux-source-6.1 bc bison flex libelf-dev libssl-dev cpio xz-utils make gcc
  # VMM confinement bridges (CSeccomp)
  libseccomp-dev libcap-dev
  # reference VMM for benchmarks and the software-CPU (TCG) boot test
  qemu-system-x86
  # busybox for test bundles and guest tools
  busybox-static
  # the reference runtimes: runc for the differential conformance suite (conformance/),
  # runc and crun for the benchmarks
  runc crun python3
  # the engines that drive sm-runc in the tests (podman with conmon; containerd with
  # its runc v2 shim and ctr)
  podman conmon containerd
  # networking: iproute2 (ip, tc: the tap and its redirects at create), curl (the
  # network tests), crun (the baseline of `sm-bench net`)
  iproute2 curl crun
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
