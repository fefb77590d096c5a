#!/usr/bin/env bash
# Benchmarks (programs that print figures), built optimised in their own scratch
# directory. Usage: scripts/bench.sh boot [--runs N] [--memory MiB] | fs [--runs N] | engine [--runs N]
#                   | start [--runs N] [--idle N] | memory [--containers N] [--boot]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bin=$(bash scripts/build.sh)
swift build -c release --scratch-path .build-release --product sm-bench >&2
if [ "${1:-}" = engine ] || [ "${1:-}" = start ] || [ "${1:-}" = memory ]; then
  # `engine`, `start` and `memory` run the release sm-runc with almost no environment (podman
  # passes no SM_RUNC_*): it finds its guest in sm-runc-guest/ beside itself.
  swift build -c release --scratch-path .build-release --product sm-runc >&2
  release=$(swift build -c release --scratch-path .build-release --show-bin-path)
  if [ -L "$release/sm-runc-guest" ] || [ ! -e "$release/sm-runc-guest" ]; then
    ln -sfn "$bin/sm-runc-guest" "$release/sm-runc-guest"
  fi
fi
export SM_RUNC_KERNEL="$bin/sm-runc-guest/vmlinux" SM_RUNC_AGENT="$bin/sm-runc-guest/sm-init"
exec "$(swift build -c release --scratch-path .build-release --show-bin-path)/sm-bench" "$@"
