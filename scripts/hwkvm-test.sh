#!/usr/bin/env bash
# The hardware-KVM test (part of scripts/test.sh): boots L1, a Linux whose /dev/kvm is
# KVM's AMD-V backend with nested paging (scripts/hwkvm/l1.sh), and runs the end-to-end
# suite scripts/hwkvm/suite.sh in it against the sm-runc this checkout built: run, the
# snapshot path, create/start/state/kill/delete, exec, 2 vCPUs with a memory limit, bind
# mounts, the confined VMM, podman. Exit status: the suite's. Logs: $SM_RUNC_HWKVM_LOGS
# (default: a temporary directory, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bin=$(bash scripts/build.sh)
logs=${SM_RUNC_HWKVM_LOGS:-$(mktemp -d /tmp/sm-runc-hwkvm.XXXXXX)}
mkdir -p "$logs"
cp scripts/hwkvm/suite.sh "$logs/suite.sh"
echo "hwkvm: suite logs in $logs" >&2
# L1 runs on qemu's software CPU: anything else busy on this machine (a process an
# earlier stage left behind) slows it several times over. Say what else runs, now and
# every 2 minutes, so a slow or stalled run can be told from a loaded machine.
busy() {
  echo "hwkvm: load $(cut -d' ' -f1-3 /proc/loadavg); busy now: $(top -b -n2 -d1 -w 200 | awk '/^top -/{n++} n==2 && $1 ~ /^[0-9]+$/ && $9+0 > 10 && $12 !~ /qemu-system|^top$/ {print $12" "$9"%"}' | head -4 | tr '\n' ' ')" >&2
}
busy
( while sleep 120; do busy; done ) & watcher=$!
trap 'kill $watcher 2>/dev/null' EXIT
SM_RUNC_HWKVM_TIMEOUT=${SM_RUNC_HWKVM_TIMEOUT:-1800} bash scripts/hwkvm/l1.sh "$logs" suite.sh SM_RUNC_BIN="$bin"
