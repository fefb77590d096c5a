#!/usr/bin/env bash
# The main job (README): all set-up on a fresh Debian 12 machine, then runs the
# example container config-examples/hello in a microVM booted by sm-runc's own VMM.
# Extra arguments go to `sm-runc run` (e.g. --debug for VMM and guest diagnostics).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash scripts/build.sh)
bash scripts/make-rootfs.sh config-examples/hello
exec "$bin/sm-runc" run "$@" -b config-examples/hello "hello-$$"
