#!/usr/bin/env bash
# Benchmarks (programs that print figures), built optimised in their own scratch
# directory. Usage: scripts/bench.sh boot [--runs N] [--memory MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bin=$(bash scripts/build.sh)
swift build -c release --scratch-path .build-release --product sm-bench >&2
export SM_RUNC_KERNEL="$bin/sm-runc-guest/vmlinux" SM_RUNC_AGENT="$bin/sm-runc-guest/sm-init"
exec "$(swift build -c release --scratch-path .build-release --show-bin-path)/sm-bench" "$@"
