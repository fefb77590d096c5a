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
# The differential suite against runc (whole runs only, not filtered ones).
if [ $# -eq 0 ]; then bash conformance/run.sh; fi
if [ $# -eq 0 ]; then bash scripts/fuzz.sh --seconds 15; fi   # fuzzing, 15 s a target (fuzz/README.md)
