#!/usr/bin/env bash
# Benchmarks (programs that print figures), built optimised in their own scratch
# directory. Usage: scripts/bench.sh boot [--runs N] [--memory MiB] | fs [--runs N] | engine [--runs N] | net [--megabytes N]
#                   | start [--runs N] [--idle N] | memory [--containers N] [--boot] | hwkvm [--runs N]
# `hwkvm` runs `boot` and `start` inside L1, a Linux whose /dev/kvm is KVM's AMD-V backend
# (scripts/hwkvm/l1.sh): sm-runc's VMM against qemu microvm with -accel kvm, and the snapshot
# start against runc, on hardware-style KVM.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bin=$(bash scripts/build.sh)
swift build -c release --scratch-path .build-release --product sm-bench >&2
if [ "${1:-}" = engine ] || [ "${1:-}" = start ] || [ "${1:-}" = memory ] || [ "${1:-}" = net ] || [ "${1:-}" = hwkvm ]; then
  # `engine`, `start`, `memory` and `net` run the release sm-runc with almost no environment (podman
  # passes no SM_RUNC_*): it finds its guest in sm-runc-guest/ beside itself.
  swift build -c release --scratch-path .build-release --product sm-runc >&2
  release=$(swift build -c release --scratch-path .build-release --show-bin-path)
  if [ -L "$release/sm-runc-guest" ] || [ ! -e "$release/sm-runc-guest" ]; then
    ln -sfn "$bin/sm-runc-guest" "$release/sm-runc-guest"
  fi
fi
export SM_RUNC_KERNEL="$bin/sm-runc-guest/vmlinux" SM_RUNC_AGENT="$bin/sm-runc-guest/sm-init"
bench="$(swift build -c release --scratch-path .build-release --show-bin-path)/sm-bench"
if [ "${1:-}" = hwkvm ]; then
  shift
  runs=3
  while [ $# -gt 0 ]; do case "$1" in --runs) runs=$2; shift 2;; *) echo "bench.sh hwkvm: unknown option $1" >&2; exit 2;; esac; done
  logs=$(mktemp -d /tmp/sm-bench-hwkvm.XXXXXX)
  cat > "$logs/bench.sh" <<'JOB'
set -u
echo "# L1: $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, /dev/kvm = KVM's $(grep -m1 -o -e svm -e vmx /proc/cpuinfo) backend"
timeout 1500 "$SM_BENCH" boot --runs "$RUNS" --deadline 600
timeout 1500 "$SM_BENCH" start --runs "$RUNS" --idle 0 --directory /tmp --deadline 600
JOB
  SM_RUNC_HWKVM_TIMEOUT=${SM_RUNC_HWKVM_TIMEOUT:-3000} exec bash scripts/hwkvm/l1.sh "$logs" bench.sh SM_BENCH="$bench" RUNS="$runs" \
    SM_RUNC_KERNEL="$SM_RUNC_KERNEL" SM_RUNC_AGENT="$SM_RUNC_AGENT"
fi
exec "$bench" "$@"
