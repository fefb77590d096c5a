#!/usr/bin/env bash
# Differential conformance: the same cases against runc (Debian's, the reference) and
# sm-runc. Each case group prints "name: value" lines, what a caller or the container
# can observe (exit codes, `state`, stdout/stderr, error text engines match on, what
# the process sees of its mounts, user, capabilities...); report.py prints one table
# line per observation, same / differs / n/a (reason) / intended (reason), from
# expected.txt, and ends with "conformance: N passed, M failed" (exit 1 if M > 0).
# conformance/README.md says what each group covers and why each difference is meant.
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

# --- config.md / config-linux.md: what the container observes -----------------------

# Printed by a container: one "name: value" line per observation (busybox sh). Mount
# flags are the per-mount ones that the spec's options set (ro/rw, nosuid, nodev,
# noexec) and the propagation (shared, slave, private).
observe_script='
mi() { awk -v d="$1" "\$5==d {o=\$6; p=\"private\"; for (i=7; \$i!=\"-\"; i++) { if (\$i ~ /^shared:/) p=\"shared\"; if (\$i ~ /^master:/) p=\"slave\" }; n=split(o,a,\",\"); f=\"\"; for (j=1;j<=n;j++) if (a[j] ~ /^(ro|rw|nosuid|nodev|noexec)$/) f=f a[j] \",\"; r=f p} END {print (r==\"\" ? \"not mounted\" : r)}" /proc/self/mountinfo; }
echo "hostname: $(hostname)"
echo "domainname: $(cat /proc/sys/kernel/domainname)"
echo "cwd: $(pwd)"
echo "uid gid: $(id -u) $(id -g)"
echo "groups: $(id -G)"
echo "umask: $(umask)"
echo "HOME: ${HOME-unset}"
echo "env FOO: ${FOO-unset}"
echo "PATH: ${PATH-unset}"
echo "TERM: ${TERM-unset}"
echo "LISTEN_PID LISTEN_FDS: ${LISTEN_PID-unset} ${LISTEN_FDS-unset}"
for f in CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp; do echo "status $f: $(grep "^$f:" /proc/self/status | cut -f2)"; done
echo "oom_score_adj: $(cat /proc/self/oom_score_adj)"
grep -E "^Max (open files|processes|core file size)" /proc/self/limits | sed "s/  */ /g; s/ *$//; s/^Max \([a-z ]*\) \([0-9a-z]*\) \([0-9a-z]*\).*/rlimit \1: \2 \3/"
for m in / /proc /dev /dev/pts /dev/shm /dev/mqueue /sys /conf-tmpfs /conf-bind /conf-bind-ro /conf-link-target /conf-shared /conf-ro /conf-file; do echo "mount $m: $(mi $m)"; done
for p in /proc/kcore /proc/keys /proc/timer_list /proc/acpi /sys/firmware /proc/scsi; do if [ -d $p ]; then n=$(ls -A $p 2>/dev/null | wc -l); else n=$(head -c 1 $p 2>/dev/null | wc -c); fi; [ "$n" = 0 ] && echo "masked $p: hidden" || echo "masked $p: visible"; done
for p in /proc/sys /proc/irq /proc/bus /proc/sysrq-trigger; do echo "readonly $p: $(mi $p)"; done
echo "bound file: $(cat /conf-file 2>&1)"
for d in null zero full random urandom tty conf-dev conf-sub/blk; do echo "device /dev/$d: $(stat -c "%F %a %t:%T %u:%g" /dev/$d 2>&1)"; done
echo "dev entries: $(ls -A /dev | sort | tr "\n" " ")"
echo "sysctl kernel.msgmax: $(cat /proc/sys/kernel/msgmax)"
echo "sysctl fs.mqueue.msg_max: $(cat /proc/sys/fs/mqueue/msg_max)"
echo "stdin is a tty: $([ -t 0 ] && echo yes || echo no)"
echo "pids.max: $(cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null | head -1)"
'
observe_args() { python3 -c 'import json,sys; print(json.dumps(["sh","-c",sys.argv[1]]))' "$observe_script"; }

case_observe_root() {
  make_bundle "$1" "$(observe_args)" '
share = path.rsplit("/", 1)[0] + "/share"
c["hostname"] = "conf-host"
c["domainname"] = "conf.domain"
c["process"]["cwd"] = "/tmp"
c["process"]["env"].append("FOO=bar baz")
c["process"]["oomScoreAdj"] = 123
c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}]
c["mounts"] += [
  {"destination": "/conf-tmpfs", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m"]},
  {"destination": "/conf-bind", "type": "bind", "source": share, "options": ["rbind", "nosuid", "noexec", "nodev"]},
  {"destination": "/conf-bind-ro", "type": "bind", "source": share, "options": ["bind", "ro", "rprivate"]},
  {"destination": "/conf-link", "type": "tmpfs", "source": "tmpfs", "options": ["noexec"]},
  {"destination": "/conf-shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]},
  {"destination": "/conf-ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nodev"]},
  {"destination": "/conf-file", "type": "bind", "source": share + "-file", "options": ["bind", "ro", "nosuid"]},
]
c["linux"]["devices"] = [{"path": "/dev/conf-dev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 0, "gid": 0},
                         {"path": "/dev/conf-sub/blk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o640, "uid": 1000, "gid": 100}]
c["linux"]["sysctl"] = {"kernel.msgmax": "4096", "fs.mqueue.msg_max": "9"}'
  mkdir -p "$1/share"; echo "a bound file" >"$1/share-file"; ln -sfn /conf-link-target "$1/rootfs/conf-link"
  "$rt" --root "$root" run -b "$1" c-obs >"$1/out" 2>"$1/err" </dev/null
  echo "run: rc=$?"
  cat "$1/out"
  [ -s "$1/err" ] && { echo "stderr:"; sed 's/^/  /' "$1/err"; }
}

case_observe_user() {
  make_bundle "$1" "$(observe_args)" '
c["process"]["user"] = {"uid": 1000, "gid": 100, "umask": 23, "additionalGids": [5, 200]}
c["linux"].setdefault("resources", {})["pids"] = {"limit": 100}
c["process"]["noNewPrivileges"] = True
c["linux"]["rootfsPropagation"] = "shared"
c["process"]["env"] = [e for e in c["process"]["env"] if not e.startswith("HOME=")]
caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
c["process"]["capabilities"] = {"bounding": caps + ["CAP_SYS_ADMIN"], "effective": caps, "permitted": caps, "inheritable": caps, "ambient": ["CAP_KILL"]}
c["root"]["readonly"] = True'
  echo "conf:x:1000:100:conf user:/home/conf:/bin/sh" >>"$1/rootfs/etc/passwd"
  echo "confgroup:x:300:someone,conf" >>"$1/rootfs/etc/group"
  "$rt" --root "$root" run -b "$1" c-user >"$1/out" 2>"$1/err" </dev/null
  echo "run: rc=$?"
  cat "$1/out"
  [ -s "$1/err" ] && { echo "stderr:"; sed 's/^/  /' "$1/err"; }
}

# A seccomp profile whose default is an errno (defaultErrnoRet), with the syscalls the
# shell needs allowed, and one whose action kills: the process dies by SIGSYS.
case_seccomp_actions() {
  make_bundle "$1" '["sh","-c","echo before; exec chroot / true"]' '
c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_KILL"}]}'
  "$rt" --root "$root" run -b "$1" c-seck >"$1/out" 2>/dev/null </dev/null
  echo "SCMP_ACT_KILL: rc=$? stdout: $(cat "$1/out")"
  rm -rf "$1"
  make_bundle "$1" '["sh","-c","chroot / true; echo chroot: $?; mkfifo /tmp/f; echo mkfifo: $?"]' '
c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
               {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
allow = "read write openat open close fstat newfstatat stat lstat mmap munmap brk rt_sigaction rt_sigprocmask rt_sigreturn ioctl execve exit exit_group wait4 clone clone3 fork vfork getpid getppid getuid geteuid getgid getegid arch_prctl set_tid_address set_robust_list rseq prlimit64 getrandom mprotect fcntl dup2 dup3 pipe pipe2 access faccessat faccessat2 getcwd chdir uname readlink readlinkat statx lseek pread64 futex sigaltstack poll ppoll select pselect6 sched_getaffinity setpgid getpgrp getpgid setsid kill tgkill gettid madvise mremap newuname sysinfo fstatfs statfs capget capset prctl setgroups setuid setgid setresuid setresgid close_range umask sched_yield getdents64 nanosleep clock_nanosleep epoll_create1 epoll_ctl epoll_pwait epoll_wait sigaltstack mkdirat unlinkat fchdir openat2 write writev exit"
c["linux"]["seccomp"]["syscalls"].insert(0, {"names": allow.split(), "action": "SCMP_ACT_ALLOW"})'
  "$rt" --root "$root" run -b "$1" c-sece >"$1/out" 2>"$1/err" </dev/null
  echo "SCMP_ACT_ERRNO default (38), chroot errno 1: rc=$? stdout: $(cat "$1/out")"
  echo "stderr: $(cat "$1/err")"
}

case_seccomp_errno() {
  make_bundle "$1" '["sh","-c","mkfifo /tmp/fifo; echo mkfifo: $?; mkdir /tmp/d && echo mkdir: ok"]' '
c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]}'
  "$rt" --root "$root" run -b "$1" c-sec >"$1/out" 2>"$1/err" </dev/null
  echo "run: rc=$?"
  cat "$1/out"
  echo "stderr: $(cat "$1/err")"
}

# `exec --process`: a second process with its own user, groups, cwd, env (no HOME),
# capabilities, rlimits and noNewPrivileges, in a container of the default config.
case_exec_observe() {
  make_bundle "$1" '["sh","-c","trap \"exit 0\" TERM; echo up; while :; do sleep 0.2; done"]' 'c["hostname"] = "conf-exec"'
  "$rt" --root "$root" run -d -b "$1" c-xobs >"$1/out" 2>&1 </dev/null
  echo "run -d: rc=$?"
  await_output "$1/out" up
  python3 - "$1/process.json" "$observe_script" <<'PY'
import json, sys
caps = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"]
json.dump({"terminal": False, "user": {"uid": 1000, "gid": 100, "umask": 63, "additionalGids": [7]},
           "args": ["sh", "-c", sys.argv[2]], "env": ["PATH=/bin:/usr/bin", "FOO=exec"], "cwd": "/tmp/exec-cwd",
           "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []},
           "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}], "noNewPrivileges": True, "oomScoreAdj": 5},
          open(sys.argv[1], "w"))
PY
  mkdir -p "$1/rootfs/tmp/exec-cwd"
  echo "conf:x:1000:100:conf user:/home/conf:/bin/sh" >>"$1/rootfs/etc/passwd"
  "$rt" --root "$root" exec --process "$1/process.json" c-xobs >"$1/eo" 2>"$1/ee" </dev/null
  echo "exec --process: rc=$?"
  grep -vE "^(mount|masked|readonly|device|dev entries|sysctl|bound file)" "$1/eo"
  [ -s "$1/ee" ] && { echo "stderr:"; sed 's/^/  /' "$1/ee"; }
  call "delete --force" delete --force c-xobs
}

# Configurations runc refuses at create: sm-runc must refuse them too, before a guest
# boots, with the words both errors contain. One "name|words (or empty)|python edit" a line.
refused_configs='net sysctl without netns|not allowed in host network namespace|c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]; c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
ipc sysctl without ipc ns|is not allowed in the hosts ipc namespace|c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "ipc"]; c["linux"]["sysctl"] = {"kernel.msgmax": "4096"}
mqueue sysctl without ipc ns|is not allowed in the hosts ipc namespace|c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "ipc"]; c["linux"]["sysctl"] = {"fs.mqueue.msg_max": "9"}
sysctl outside namespaces|is not in a separate kernel namespace|c["linux"]["sysctl"] = {"vm.swappiness": "10"}
net sysctl the kernel does not have|no such file or directory|c["linux"]["sysctl"] = {"net.no.such": "1"}
hostname sysctl without uts ns||c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "uts"]; c["linux"]["sysctl"] = {"kernel.hostname": "x"}
hostname without uts ns|unable to set hostname without a private UTS namespace|c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "uts"]; c["hostname"] = "x"
relative cwd||c["process"]["cwd"] = "tmp"
terminal without console socket|cannot allocate tty if runc will detach without setting console socket|c["process"]["terminal"] = True
relative mount destination||c["mounts"].append({"destination": "rel", "type": "tmpfs", "source": "tmpfs"})
seccomp listenerPath without a listener||c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/tmp/sm-runc-conformance-no-listener.sock", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}'

case_refused() {
  local name words edits
  while IFS='|' read -r name words edits; do
    rm -rf "$1"; make_bundle "$1" '["true"]' "$edits"
    call "$name" create -b "$1" c-ref
    [ -n "$words" ] && matches "$name" "$words"
    "$rt" --root "$root" delete --force c-ref >/dev/null 2>&1
  done <<<"$refused_configs"
}

# systemd socket activation: LISTEN_FDS for the runtime's own pid, fd 3 open.
case_socket_activation() {
  make_bundle "$1" '["sh","-c","echo LISTEN_PID=$LISTEN_PID LISTEN_FDS=$LISTEN_FDS; cat <&3"]'
  echo "fd 3 content" >"$1/fd3"
  sh -c 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"' sh "$rt" --root "$root" run -b "$1" c-listen >"$1/out" 2>"$1/err" 3<"$1/fd3" </dev/null
  echo "run with LISTEN_FDS=1: rc=$?"
  echo "stdout: $(cat "$1/out" | tr "\n" " ")"
  "$rt" --root "$root" delete --force c-listen >/dev/null 2>&1
}

# --preserve-fds: runc passes the caller's fd 3... into the container.
case_preserve_fds() {
  make_bundle "$1" '["sh","-c","cat <&3"]'
  echo "fd 3 content" >"$1/fd3"
  "$rt" --root "$root" run --preserve-fds 1 -b "$1" c-pfd >"$1/out" 2>"$1/err" 3<"$1/fd3" </dev/null
  echo "run --preserve-fds 1: rc=$?"
  echo "stdout: $(cat "$1/out")"
  "$rt" --root "$root" delete --force c-pfd >/dev/null 2>&1
}

case_cwd_missing() {
  make_bundle "$1" '["sh","-c","pwd"]' 'c["process"]["cwd"] = "/no/such/dir"'
  "$rt" --root "$root" run -b "$1" c-cwd >"$1/out" 2>"$1/err" </dev/null
  echo "run: rc=$?"
  echo "stdout: $(cat "$1/out")"
  echo "made in the rootfs: $([ -d "$1/rootfs/no/such/dir" ] && echo yes || echo no)"
  "$rt" --root "$root" delete --force c-cwd >/dev/null 2>&1
}

case_terminal_detached() {
  make_bundle "$1" '["true"]' 'c["process"]["terminal"] = True'
  "$rt" --root "$root" run -d -b "$1" c-tty >"$1/out" 2>"$work/call.err" </dev/null
  echo "run -d, terminal, no console socket: rc=$?"; matches "run -d, terminal" "console socket"
  "$rt" --root "$root" delete --force c-tty >/dev/null 2>&1
}

# process.terminal with --console-socket: the pty master goes to the caller (a
# receiver like runc's recvtty), the process has it as its controlling terminal.
case_terminal() {
  make_bundle "$1" '["sh","-c","echo tty: $(tty); [ -t 0 ] && echo stdin: a tty; [ -t 1 ] && echo stdout: a tty; echo TERM: $TERM; echo size: $(stty size)"]' '
c["process"]["terminal"] = True
c["process"]["consoleSize"] = {"height": 30, "width": 100}'
  python3 conformance/console-receiver.py "$1/console.sock" "$1/console.out" 120 & local receiver=$!
  for _ in $(seq 1 50); do [ -S "$1/console.sock" ] && break; sleep 0.1; done
  "$rt" --root "$root" run -d --console-socket "$1/console.sock" -b "$1" c-term >/dev/null 2>"$1/err" </dev/null
  echo "run -d --console-socket: rc=$?"
  wait $receiver; echo "master received: rc=$?"
  tr -d '\r' <"$1/console.out" | sed 's/^/console /'
  await_status c-term stopped
  call delete delete c-term
}

# --- runtime.md: the lifecycle, operations on each state, and the state document -----

case_states() {
  make_bundle "$1" '["sh","-c","trap \"exit 0\" TERM; echo up; while :; do sleep 0.2; done"]' 'c["annotations"] = {"org.conf.a": "b"}'
  "$rt" --root "$root" create -b "$1" c-st >"$1/out" 2>&1 </dev/null
  echo "create: rc=$?"
  "$rt" --root "$root" state c-st >"$work/state.json" 2>/dev/null
  python3 - "$work/state.json" "$1" <<'PY'
import json, sys, os
s = json.load(open(sys.argv[1]))
print("state keys:", " ".join(sorted(s)))
print("state ociVersion is 1.x:", str(s.get("ociVersion", "")).startswith("1."))
print("state id:", s.get("id"))
print("state status:", s.get("status"))
print("state bundle is the bundle:", os.path.realpath(s.get("bundle", "")) == os.path.realpath(sys.argv[2]))
print("state pid is a live host process:", isinstance(s.get("pid"), int) and os.path.exists("/proc/%d" % s["pid"]))
print("state annotations:", s.get("annotations"))
PY
  call "create same id" create -b "$1" c-st; matches "create same id" "already exists"
  call "pause created" pause c-st
  call "resume created" resume c-st
  call "kill 0 created" kill c-st 0
  echo "status after kill 0: $(status c-st)"
  call start start c-st
  await_output "$1/out" up
  call "kill 0 running" kill c-st 0
  call "pause running" pause c-st
  call "kill 0 paused" kill c-st 0
  call "start paused" start c-st
  call "delete --force paused" delete --force c-st
  call "state after delete --force" state c-st; matches "state after delete --force" "does not exist"
  "$rt" --root "$root" create -b "$1" c-st2 >/dev/null 2>&1 </dev/null
  echo "create: rc=$?"
  call "delete created" delete c-st2
  call "state after delete created" state c-st2; matches "state after delete created" "does not exist"
  "$rt" --root "$root" run -d -b "$1" c-st3 >"$1/out3" 2>&1 </dev/null
  echo "run -d: rc=$?"
  await_output "$1/out3" up
  call "delete --force running" delete --force c-st3
  call "state after delete --force running" state c-st3; matches "state after delete --force running" "does not exist"
  call "create with an invalid id" create -b "$1" "bad/id"
}

# A process that ends by itself: `kill 0` succeeds until it is gone, then fails with
# runc's words (never another error while the container is on its way out); the state
# of a stopped container; kill and delete after.
case_exiting() {
  make_bundle "$1" '["sh","-c","echo up; sleep 1"]'
  "$rt" --root "$root" run -d -b "$1" c-exit >"$1/out" 2>&1 </dev/null
  echo "run -d: rc=$?"
  await_output "$1/out" up
  local rc=0
  for _ in $(seq 1 300); do
    "$rt" --root "$root" kill c-exit 0 >/dev/null 2>"$work/call.err" </dev/null; rc=$?
    [ $rc != 0 ] && break
    sleep 0.1
  done
  echo "kill 0 once the process is gone: rc=$rc"; matches "kill 0 once the process is gone" "container not running"
  await_status c-exit stopped
  "$rt" --root "$root" state c-exit 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); print("stopped state: status %s, pid %s" % (s["status"], s.get("pid")))'
  call "kill KILL stopped" kill c-exit KILL; matches "kill KILL stopped" "container not running"
  call "kill --all stopped" kill --all c-exit KILL
  call "pause stopped" pause c-exit
  call delete delete c-exit
}

case_hooks() {
  make_bundle "$1" '["sh","-c","echo process"]' '
log = path.rsplit("/", 1)[0] + "/hooks.log"
hook = lambda n: {"path": "/bin/sh", "args": ["sh", "-c", "{ printf \"%s \" \"$0\"; cat; echo; } >> " + log, n]}
c["hooks"] = {k: [hook(k)] for k in ["prestart", "createRuntime", "poststart", "poststop"]}
inside = lambda n: {"path": "/bin/sh", "args": ["sh", "-c", "{ printf \"%s \" \"$0\"; cat; echo; } >> /tmp/sm-runc-conformance-hooks.log", n]}
c["hooks"]["createContainer"] = [inside("createContainer")]
c["hooks"]["startContainer"] = [inside("startContainer")]'
  "$rt" --root "$root" run -b "$1" c-hook >"$1/out" 2>"$1/err" </dev/null
  echo "run: rc=$?"
  echo "stdout: $(cat "$1/out")"
  # createContainer and startContainer write to /tmp/sm-runc-conformance-hooks.log
  # as they see it: the container's /tmp, or the host's (runc's createContainer runs
  # before pivot_root).
  python3 - "$1/hooks.log" "$1" "$1/rootfs/tmp/sm-runc-conformance-hooks.log" /tmp/sm-runc-conformance-hooks.log <<'PY'
import json, sys, os
lines = []
for log, where in ((sys.argv[1], None), (sys.argv[3], "the container's /"), (sys.argv[4], "the host's /")):
    try:
        found = open(log).readlines()
    except OSError:
        continue
    if where:
        os.unlink(log)
        for line in found:
            print("hook %s location: sees %s" % (line.split(" ", 1)[0], where))
    lines += found
for line in lines:
    name, _, doc = line.strip().partition(" ")
    s = json.loads(doc)
    print("hook %s: status %s, id %s, pid given %s, bundle %s" % (name, s.get("status"), s.get("id"),
          isinstance(s.get("pid"), int) and s["pid"] > 0, os.path.realpath(s.get("bundle", "")) == os.path.realpath(sys.argv[2])))
PY
}

# Intended differences and what does not apply to a VM: "group/observation|n/a or intended|reason".
# Kept in conformance/expected.txt (one a line, the same reasons as README.md).
cases=(${CONFORMANCE_CASES:-run_exit_code lifecycle kill_created errors process exec_failure exec pause_ps_kill_all states refused socket_activation preserve_fds cwd_missing terminal_detached terminal observe_root observe_user exec_observe seccomp_errno seccomp_actions exiting hooks})
for name in "${cases[@]}"; do
  for side in reference candidate; do
    rt=${!side}
    root="$work/$side-root"
    mkdir -p "$root"
    "case_$name" "$work/$side-$name" >"$work/$side-$name.txt" 2>&1
  done
  [ -n "${CONFORMANCE_VERBOSE:-}" ] && sed "s/^/    | /" "$work/reference-$name.txt"
done
# The table: one line per observation ("group/name"), compared between the transcripts.
python3 conformance/report.py conformance/expected.txt "$work" "${cases[@]}"
