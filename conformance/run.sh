#!/usr/bin/env bash
# Differential conformance: the same lifecycle cases against runc (Debian's, the
# reference) and sm-runc, outcome by outcome. Each case prints what a caller can
# observe (exit codes, `state` status, the process's stdout/stderr, error text
# engines match on); the two transcripts must be identical.
#
# Usage: [CONFORMANCE_VERBOSE=1] [CONFORMANCE_CASES="exec ..."] conformance/run.sh [REFERENCE_RUNTIME [RUNTIME_UNDER_TEST]]
#        (default: runc and .build/debug/sm-runc; root is needed by both)
#
# Intended differences, kept out of the cases (a VM has its own kernel):
#  - The process is not PID 1 of a pid namespace: sm-init is PID 1 in the guest. A
#    signal with no handler kills the process under sm-runc, while under runc PID 1
#    ignores it (TERM, USR1). Cases trap the signals they send.
#  - `uname -r`, /proc and /sys show the guest kernel, not the host's.
#  - The pid in `state` and --pid-file is the VMM process, not the container process;
#    `ps` lists the VMM and exec proxies (host pids), not the container's processes,
#    which live in the guest. Cases compare only that ps gives an array of pids.
#  - pause freezes the whole guest (its vCPU), not a cgroup of host processes.
#  - Error messages that are not matched by engines may be worded differently; cases
#    compare only the substrings engines match on ("does not exist", ...).
#  - Timing: create takes a guest boot (seconds on real KVM, tens of seconds nested).
set -uo pipefail
cd "$(dirname "$0")/.."
reference=${1:-runc}
candidate=${2:-$PWD/.build/debug/sm-runc}
command -v "$reference" >/dev/null || { echo "conformance: $reference not found (apt-get install runc)" >&2; exit 2; }
[ -x "$candidate" ] || { echo "conformance: $candidate not found (scripts/build.sh)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "conformance: needs root (both runtimes)" >&2; exit 2; }

work=$(mktemp -d /tmp/sm-runc-conformance.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A busybox bundle whose config.json is `runc spec`'s, with the given process.
make_bundle() { # dir args-json [jq-like python edits]
  local dir=$1 args=$2 edits=${3:-}
  mkdir -p "$dir"
  bash scripts/make-rootfs.sh "$dir" >/dev/null
  (cd "$dir" && runc spec)
  python3 - "$dir/config.json" "$args" "$edits" <<'PY'
import json, sys
path, args, edits = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
c["root"]["readonly"] = False
if edits:
    exec(edits)
json.dump(c, open(path, "w"), indent=1)
PY
}

# Runs one runtime command; records "<label>: rc=N" and chosen output.
call() { # label runtime-args...
  local label=$1; shift
  "$rt" --root "$root" "$@" >"$work/call.out" 2>"$work/call.err" </dev/null
  echo "$label: rc=$?"
}
matches() { # label substring: whether the last call's stderr contains it
  grep -qF -- "$2" "$work/call.err" && echo "$1: says \"$2\"" || { echo "$1: does not say \"$2\":"; sed 's/^/    /' "$work/call.err"; }
}
status() { "$rt" --root "$root" state "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || echo none; }
await_status() { # id want
  for _ in $(seq 1 600); do [ "$(status "$1")" = "$2" ] && break; sleep 0.2; done
  echo "status $1: $(status "$1")"
}
await_output() { # file text
  for _ in $(seq 1 600); do grep -qF -- "$2" "$1" 2>/dev/null && return; sleep 0.2; done
}

case_run_exit_code() {
  make_bundle "$1" '["sh","-c","printf \"out\\001\\377\"; echo err >&2; exit 3"]'
  "$rt" --root "$root" run -b "$1" c-run >"$1/out" 2>"$1/err" </dev/null
  echo "run: rc=$?"
  echo "stdout: $(od -An -c "$1/out" | tr -s ' ')"
  echo "stderr: $(cat "$1/err")"
  call "state after run" state c-run; matches "state after run" "does not exist"
}

case_lifecycle() {
  make_bundle "$1" '["sh","-c","trap \"echo got TERM; exit 7\" TERM; echo started; while :; do sleep 0.2; done"]'
  "$rt" --root "$root" create -b "$1" --pid-file "$1/pid" c-life >"$1/out" 2>"$1/err" </dev/null
  echo "create: rc=$?"
  echo "pid file ends without newline: $([ -n "$(tail -c1 "$1/pid")" ] && echo yes || echo no)"
  echo "status: $(status c-life)"
  echo "output before start: $(wc -c <"$1/out")"
  call start start c-life
  echo "status: $(status c-life)"
  call "start again" start c-life
  call "delete running" delete c-life; matches "delete running" "not stopped"
  await_output "$1/out" started
  call "kill TERM" kill c-life TERM
  await_status c-life stopped
  echo "stdout: $(cat "$1/out")"
  call "kill stopped" kill c-life KILL; matches "kill stopped" "container not running"
  call "start stopped" start c-life
  call delete delete c-life
  call "state deleted" state c-life; matches "state deleted" "does not exist"
  call "delete --force deleted" delete --force c-life
}

case_kill_created() {
  make_bundle "$1" '["sh","-c","echo must-not-run"]'
  "$rt" --root "$root" create -b "$1" c-kill >"$1/out" 2>&1 </dev/null
  echo "create: rc=$?"
  call "kill 9" kill c-kill 9
  await_status c-kill stopped
  call delete delete c-kill
  echo "output: $(cat "$1/out")"
}

case_errors() {
  make_bundle "$1" '["true"]'
  call "state unknown" state nosuch; matches "state unknown" "does not exist"
  call "start unknown" start nosuch; matches "start unknown" "does not exist"
  call "kill unknown" kill nosuch; matches "kill unknown" "does not exist"
  call "delete unknown" delete nosuch; matches "delete unknown" "does not exist"
  call "delete --force unknown" delete --force nosuch
  call "create without config" create -b "$work/nowhere" c-err; matches "create without config" "no such file or directory"
  call "start without id" start
  echo "left behind: $(ls "$root" 2>/dev/null | wc -l)"
}

case_process() {
  make_bundle "$1" '["sh","-c","id -u; id -g; pwd; echo $FOO; hostname; umask; touch /ro 2>/dev/null || echo ro-refused"]' '
c["process"]["user"] = {"uid": 1000, "gid": 100, "umask": 23}
c["process"]["cwd"] = "/tmp"
c["process"]["env"].append("FOO=bar baz")
c["hostname"] = "conf-host"
c["root"]["readonly"] = True'
  "$rt" --root "$root" run -b "$1" c-proc >"$1/out" 2>"$1/err" </dev/null
  echo "run: rc=$?"
  sed 's/^/  /' "$1/out"
}

case_exec_failure() {
  make_bundle "$1" '["/nonexistent"]'
  "$rt" --root "$root" run -b "$1" c-exec >/dev/null 2>"$1/err" </dev/null
  echo "run /nonexistent: rc=$?"
  "$rt" --root "$root" delete --force c-exec 2>/dev/null
}

case_exec() {
  make_bundle "$1" '["sh","-c","trap \"exit 0\" TERM; echo up; while :; do sleep 0.2; done"]'
  "$rt" --root "$root" run -d -b "$1" c-exec >"$1/out" 2>&1 </dev/null
  echo "run -d: rc=$?"
  await_output "$1/out" up
  echo "status: $(status c-exec)"
  printf 'typed\n' | "$rt" --root "$root" exec c-exec sh -c 'cat; echo err >&2; exit 5' >"$1/eo" 2>"$1/ee"
  echo "exec: rc=$?"
  echo "exec stdout: $(cat "$1/eo")"
  echo "exec stderr: $(cat "$1/ee")"
  "$rt" --root "$root" exec c-exec /no/such >/dev/null 2>"$work/call.err" </dev/null
  echo "exec missing: rc=$?"; matches "exec missing" "no such file or directory"
  "$rt" --root "$root" exec -d --pid-file "$1/exec.pid" c-exec sh -c 'exit 0' </dev/null >/dev/null 2>&1
  echo "exec -d: rc=$? pid file: $([ -s "$1/exec.pid" ] && echo written || echo missing)"
  echo "status after exec: $(status c-exec)"
  call "delete --force" delete --force c-exec
}

case_pause_ps_kill_all() {
  make_bundle "$1" '["sh","-c","trap \"exit 0\" TERM; echo up; while :; do sleep 0.2; done"]'
  "$rt" --root "$root" run -d -b "$1" c-pause >"$1/out" 2>&1 </dev/null
  echo "run -d: rc=$?"
  await_output "$1/out" up
  call pause pause c-pause
  echo "status: $(status c-pause)"
  call "pause again" pause c-pause
  call "delete paused" delete c-pause; matches "delete paused" "not stopped"
  call resume resume c-pause
  echo "status: $(status c-pause)"
  call "resume running" resume c-pause
  "$rt" --root "$root" ps --format json c-pause >"$work/ps.json" 2>/dev/null
  echo "ps --format json: rc=$? $(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print("array of pids" if isinstance(v,list) and v and all(isinstance(p,int) for p in v) else v)' "$work/ps.json")"
  call "kill --all KILL" kill --all c-pause KILL
  await_status c-pause stopped
  call delete delete c-pause
}

cases=(${CONFORMANCE_CASES:-run_exit_code lifecycle kill_created errors process exec_failure exec pause_ps_kill_all})
failed=0
for name in "${cases[@]}"; do
  for side in reference candidate; do
    rt=${!side}
    root="$work/$side-root"
    mkdir -p "$root"
    "case_$name" "$work/$side-$name" >"$work/$side-$name.txt" 2>&1
  done
  [ -n "${CONFORMANCE_VERBOSE:-}" ] && sed "s/^/    | /" "$work/reference-$name.txt"
  if diff -u --label "runc: $name" --label "sm-runc: $name" "$work/reference-$name.txt" "$work/candidate-$name.txt" >"$work/diff"; then
    echo "same     $name"
  else
    echo "DIFFERS  $name"
    sed 's/^/    /' "$work/diff"
    failed=1
  fi
done
exit $failed
