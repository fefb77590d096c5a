#!/usr/bin/env bash
# The main job (README): all set-up on a fresh Debian 12 machine, then boots
# the guest kernel in sm-runc's own VMM to the Swift guest agent, with --debug
# diagnostics (host kind, command line, VM exits, VMM CPU time).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash scripts/build.sh)
exec "$bin/sm-runc" boot --debug "$@"
