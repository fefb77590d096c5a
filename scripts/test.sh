#!/usr/bin/env bash
# The test command (README, .ci/run): all set-up on a fresh Debian 12 machine,
# then every test. Tests that boot VMs need /dev/kvm and root; they fail, never
# skip, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/build.sh >/dev/null
swift build --build-tests
swift test --skip-build "$@"
# Whole runs only, not filtered ones: the differential suite against runc, a short
# bounded fuzzing run of the guest-facing parsers (15 s a target, fuzz/README.md), then
# the end-to-end suite on hardware-style KVM (AMD-V with nested paging, in L1 under
# qemu's software CPU; scripts/hwkvm-test.sh).
if [ $# -eq 0 ]; then
  bash conformance/run.sh
  bash scripts/fuzz.sh --seconds 15
  bash scripts/hwkvm-test.sh
fi
