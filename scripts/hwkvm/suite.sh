#!/usr/bin/env bash
# The hardware-KVM suite: runs inside L1 (scripts/hwkvm/l1.sh), whose /dev/kvm is KVM's
# AMD-V backend, against the sm-runc built on the host (SM_RUNC_BIN, the directory that
# holds sm-runc and sm-runc-guest/). Each case prints `ok N - what` or `not ok N - what`
# with the evidence; the last line is `hwkvm: P passed, F failed`. Exit 1 if any failed.
#
# Every sm-runc command has its own timeout: a guest that hangs fails its case, not the run.
set -uo pipefail
bin=${SM_RUNC_BIN:?SM_RUNC_BIN: the directory of the sm-runc build}
out=${SM_RUNC_HWKVM_OUT:-/mnt}
rt="$bin/sm-runc"
export SM_RUNC_CACHE=/tmp/sm-cache           # L1's / is read-only; a cache of its own (the kernel is found beside sm-runc)
root=/run/sm-runc-hwkvm
work=/tmp/hwkvm
mkdir -p "$work" "$out"
passed=0 failed=0 n=0
# Each result line ends with the seconds since the previous one.
mark=$(date +%s)
took() { local now; now=$(date +%s); took="$((now - mark)) s"; mark=$now; }
ok()   { n=$((n + 1)); passed=$((passed + 1)); took; echo "ok $n - $1 ($took)"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); took; echo "not ok $n - $1 ($took)"; shift; for line in "$@"; do echo "#   $line"; done; }
# check WHAT CONDITION-STATUS EVIDENCE...: ok when the status is 0.
check() { local what=$1 status=$2; shift 2; if [ "$status" -eq 0 ]; then ok "$what"; else fail "$what" "$@"; fi; }
# A command that outlives its time gets TERM (`run` then aborts and removes what it
# made), and KILL 15 s later.
smr() { timeout -k 15 "${T:-240}" "$rt" --root "$root" "$@"; }
# The first-use snapshot maker and a boot give up (with each vCPU's MP state and RIP in
# the error) well before a case's own timeout.
export SM_RUNC_BOOT_TIMEOUT=${SM_RUNC_BOOT_TIMEOUT:-150}
log_of() { echo "$out/$1.log"; }
tail_of() { tail -n 5 "$1" 2>/dev/null | cut -c1-300; grep -h -e "no snapshot made" -e "deadline of" "$1" 2>/dev/null | cut -c1-900; }

# A busybox bundle: bundle DIR ARGS_JSON [MOUNTS_JSON] [RESOURCES_JSON]
bundle() {
  local dir=$1 args=$2 mounts=${3:-} resources=""
  [ -z "${4:-}" ] || resources="\"resources\": $4,"
  mkdir -p "$dir/rootfs"/{bin,dev,proc,sys,tmp,etc,data,ro}
  [ -e "$dir/rootfs/bin/busybox" ] || { cp /bin/busybox "$dir/rootfs/bin/busybox"; for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$a"; done; }
  cat > "$dir/config.json" <<JSON
{
  "ociVersion": "1.2.0",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": $args,
              "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/"},
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "hwkvm",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}${mounts:+,
    $mounts}
  ],
  "linux": {$resources
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]}
}
JSON
}
# wait_for FILE TEXT SECONDS: until FILE contains TEXT.
wait_for() { local end=$(( $(date +%s) + $3 )); while [ "$(date +%s)" -lt "$end" ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done; return 1; }
# wait_state ID STATE SECONDS: until `state` says STATE.
wait_state() { local end=$(( $(date +%s) + $3 )); while [ "$(date +%s)" -lt "$end" ]; do [ "$(state_of "$1")" = "$2" ] && return 0; sleep 0.2; done; return 1; }
state_of() { smr state "$1" 2>/dev/null | sed -n 's/^ *"status" *: *"\([a-z]*\)".*/\1/p'; }
pid_of() { smr state "$1" 2>/dev/null | sed -n 's/^ *"pid" *: *\([0-9]*\).*/\1/p'; }

echo "# L1: $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, $(grep -m1 -o -e svm -e vmx /proc/cpuinfo) $(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null | sed 's/^/npt=/')"

# 1. run: byte-exact output and exit status 3, on a cold cache (the first run boots and
#    makes the snapshot), within a bounded time.
b=$work/run; bundle "$b" '["sh", "-c", "echo hello from hardware KVM; echo to stderr >&2; exit 3"]'
start=$(date +%s)
smr --debug --log "$(log_of run1)" run -b "$b" hw-run1 < /dev/null > "$work/run1.out" 2> "$work/run1.err"; status=$?
took=$(( $(date +%s) - start ))
[ "$status" -eq 3 ] && [ "$(cat "$work/run1.out")" = "hello from hardware KVM" ] && grep -qx "to stderr" "$work/run1.err"
check "run of a busybox bundle: output byte-exact, exit 3 (first run, ${took} s)" $? \
  "exit $status, stdout: $(head -c 200 "$work/run1.out" | od -c | head -3)" "stderr: $(tail_of "$work/run1.err")" "log: $(tail_of "$(log_of run1)")"
grep -q "host: hardware KVM" "$(log_of run1)"
check "--debug names the host kind: hardware KVM" $? "$(grep -m1 'host:' "$(log_of run1)")"

# 2. The second container starts from the snapshot the first one made.
smr --debug --log "$(log_of run2)" run -b "$b" hw-run2 < /dev/null > "$work/run2.out" 2>/dev/null; status=$?
[ "$status" -eq 3 ] && [ "$(cat "$work/run2.out")" = "hello from hardware KVM" ] && grep -q "started from snapshot" "$(log_of run2)"
check "second run starts from the snapshot (exit 3, same output)" $? "exit $status" "$(grep -m1 -e 'started from snapshot' -e 'booted:' "$(log_of run2)")"
grep -o 'started from snapshot .*' "$(log_of run2)" | head -1 | sed 's/^/# /'
grep -o 'timeline: .*' "$(log_of run2)" | head -1 | cut -c1-400 | sed 's/^/# /'

# 3. create / start / state / kill / delete with exact states; timers run (sleep returns).
b=$work/life; bundle "$b" '["sh", "-c", "trap \"echo got TERM; exit 0\" TERM; echo started; sleep 1; echo slept; while :; do sleep 1; done"]'
smr --debug --log "$(log_of life)" create -b "$b" hw-life < /dev/null > "$work/life.out" 2>&1; status=$?
s1=$(state_of hw-life)
smr start hw-life; s2=$(state_of hw-life)
wait_for "$work/life.out" slept 60; slept=$?
smr kill hw-life TERM; killed=$?
wait_state hw-life stopped 60
s3=$(state_of hw-life)
smr delete hw-life; deleted=$?
gone=$(smr state hw-life 2>&1 >/dev/null)
[ "$status" -eq 0 ] && [ "$s1" = created ] && [ "$s2" = running ] && [ "$slept" -eq 0 ] && [ "$killed" -eq 0 ] && [ "$s3" = stopped ] \
  && [ "$deleted" -eq 0 ] && echo "$gone" | grep -q "container does not exist" && grep -q "got TERM" "$work/life.out"
check "create/start/kill TERM/delete: created, running, stopped, gone; sleep 1 returns" $? \
  "create $status; states '$s1' '$s2' '$s3'; sleep returned $slept; kill $killed; delete $deleted; state after delete: $gone" \
  "output: $(tr '\n' '|' < "$work/life.out")" "log: $(tail_of "$(log_of life)")"

# 4. exec into a running container; the VMM confined: every thread Seccomp 2, NoNewPrivs 1.
b=$work/exec; bundle "$b" '["sh", "-c", "while :; do sleep 1; done"]'
smr --debug --log "$(log_of exec)" run -d -b "$b" hw-exec < /dev/null > /dev/null 2>&1; status=$?
got=$(smr exec hw-exec sh -c 'echo in the microVM; cat /proc/uptime >/dev/null; exit 5' 2>&1); estatus=$?
[ "$status" -eq 0 ] && [ "$estatus" -eq 5 ] && [ "$got" = "in the microVM" ]
check "exec into a running container: output and exit 5" $? "run -d $status; exec $estatus: $got" "log: $(tail_of "$(log_of exec)")"
pid=$(pid_of hw-exec); threads=0 confined=0
for t in /proc/"${pid:-0}"/task/*; do
  [ -r "$t/status" ] || continue
  threads=$((threads + 1))
  grep -q '^Seccomp:[[:space:]]*2' "$t/status" && grep -q '^NoNewPrivs:[[:space:]]*1' "$t/status" && confined=$((confined + 1))
done
[ -n "$pid" ] && [ "$threads" -gt 0 ] && [ "$confined" -eq "$threads" ] && [ -z "${SM_RUNC_VMM_SECCOMP:-}" ]
check "the VMM is confined: $confined of $threads threads Seccomp 2 + NoNewPrivs 1" $? "VMM pid '$pid'" \
  "$(for t in /proc/"${pid:-0}"/task/*; do echo "$(cat "$t/comm" 2>/dev/null): $(grep -h -e ^Seccomp: -e ^NoNewPrivs: "$t/status" 2>/dev/null | tr -s '\t\n' '  ')"; done | head -8)"
smr kill hw-exec KILL; wait_state hw-exec stopped 30
smr delete -f hw-exec; check "kill KILL + delete of the exec container" $? "$(state_of hw-exec)"

# 5. 2 vCPUs and a 256 MiB memory limit (podman --cpus 2 --memory 256m): 240 MiB of guest RAM.
b=$work/size; bundle "$b" '["sh", "-c", "nproc; grep MemTotal /proc/meminfo; grep -c ^processor /proc/cpuinfo"]' "" \
  '{"memory": {"limit": 268435456}, "cpu": {"quota": 200000, "period": 100000}}'
T=420 smr --debug --log "$(log_of size)" run -b "$b" hw-size < /dev/null > "$work/size.out" 2>&1; status=$?
nproc=$(sed -n 1p "$work/size.out"); memkb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' "$work/size.out")
[ "$status" -eq 0 ] && [ "$nproc" = 2 ] && [ -n "$memkb" ] && [ "$memkb" -gt 150000 ] && [ "$memkb" -le 245760 ] \
  && grep -q "microVM size: 240 MiB, 2 vCPU" "$(log_of size)"
check "2 vCPUs and a 256 MiB limit: nproc 2, MemTotal ${memkb:-?} kB of a 240 MiB guest" $? "exit $status: $(tr '\n' '|' < "$work/size.out")" \
  "$(grep -m1 'microVM size' "$(log_of size)")" "log: $(tail_of "$(log_of size)")"
# A first-use snapshot that could not be made (the container then booted): said, with
# where each vCPU was, even when the case passed.
grep -h -e "no snapshot made" "$(log_of size)" | cut -c1-900 | sed 's/^.*msg="/# size: /; s/"$//'

# 6. Bind mounts of a host directory, read-write and read-only.
data=$work/data; mkdir -p "$data"; echo "from the host" > "$data/in"
b=$work/bind; bundle "$b" '["sh", "-c", "cat /data/in; echo from the guest > /data/out; if { echo x > /ro/denied; } 2>/dev/null; then echo ro-writable; else echo ro-refused; fi; cat /ro/in"]' \
  "{\"destination\": \"/data\", \"type\": \"bind\", \"source\": \"$data\", \"options\": [\"rbind\", \"rw\"]},
    {\"destination\": \"/ro\", \"type\": \"bind\", \"source\": \"$data\", \"options\": [\"rbind\", \"ro\"]}"
smr --debug --log "$(log_of bind)" run -b "$b" hw-bind < /dev/null > "$work/bind.out" 2>&1; status=$?
[ "$status" -eq 0 ] && [ "$(cat "$work/bind.out")" = "$(printf 'from the host\nro-refused\nfrom the host')" ] \
  && [ "$(cat "$data/out" 2>/dev/null)" = "from the guest" ] && [ ! -e "$data/denied" ]
check "bind mounts: rw written through to the host, ro refused" $? "exit $status: $(tr '\n' '|' < "$work/bind.out")" \
  "host sees: $(cat "$data/out" 2>&1)" "log: $(tail_of "$(log_of bind)")"
grep -m1 -e 'started from snapshot' -e 'booted:' "$(log_of bind)" | sed 's/^.*msg="/# bind container: /; s/"$//'

# 7. podman with --runtime sm-runc, on a busybox image imported from a tarball (no registry).
if command -v podman >/dev/null && command -v conmon >/dev/null; then
  p=$work/podman; mkdir -p "$p"/{storage,run,tmp,cni}
  printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$p" "$p" > "$p/storage.conf"
  printf '[containers]\nnetns = "none"\ncgroupns = "private"\nlog_driver = "k8s-file"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "%s/tmp/events.log"\ntmp_dir = "%s/tmp"\nstatic_dir = "%s/storage/libpod"\nvolume_path = "%s/storage/volumes"\n[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "%s/cni"\n' \
    "$p" "$p" "$p" "$p" "$p" > "$p/containers.conf"
  export CONTAINERS_CONF=$p/containers.conf CONTAINERS_STORAGE_CONF=$p/storage.conf
  tar -C "$work/run/rootfs" -cf "$p/bb.tar" .
  timeout 120 podman import "$p/bb.tar" localhost/hwkvm-bb > "$p/import.out" 2>&1
  # podman hands the runtime no SM_RUNC_* variables: a wrapper points it at this run's
  # cache (L1's /var/cache is read-only), so its container restores the snapshot above.
  printf '#!/bin/sh\nSM_RUNC_CACHE=%s exec %s "$@"\n' "$SM_RUNC_CACHE" "$rt" > "$p/sm-runc"; chmod +x "$p/sm-runc"
  got=$(timeout 300 podman --runtime "$p/sm-runc" --runtime-flag debug --runtime-flag "log=$(log_of podman)" run --rm localhost/hwkvm-bb sh -c 'echo hello from podman; exit 7' 2> "$p/run.err"); status=$?
  [ "$status" -eq 7 ] && [ "$got" = "hello from podman" ] && grep -q "started from snapshot" "$(log_of podman)"
  check "podman run --rm with --runtime sm-runc: output, exit 7, started from the snapshot" $? "exit $status: $got" "stderr: $(tail_of "$p/run.err")" "import: $(tail_of "$p/import.out")" "log: $(tail_of "$(log_of podman)")"
  grep -m1 -e 'started from snapshot' -e 'booted:' "$(log_of podman)" | sed 's/^.*msg="/# podman container: /; s/"$//'
else
  fail "podman run --rm with --runtime sm-runc" "podman or conmon is not installed (scripts/setup-deps.sh installs them)"
fi

# 8. The container's network: a netns with a veth (the suite's own, 10.213.9.0/24); the
#    guest's eth0 takes its MAC and address, pings the host end, and fetches 16 MiB from
#    busybox httpd on it (the figure: wget's time in the guest); no tap or qdisc after.
ns=hwkvm-net; nb=$work/net; mkdir -p "$nb/www"
ip netns del $ns 2>/dev/null; ip link del hwkvm-veth 2>/dev/null
ip netns add $ns && ip link add hwkvm-veth type veth peer name eth0 netns $ns && ip addr add 10.213.9.1/24 dev hwkvm-veth \
  && ip link set hwkvm-veth up && ip -n $ns addr add 10.213.9.2/24 dev eth0 && ip -n $ns link set eth0 up \
  && ip -n $ns route add default via 10.213.9.1; status=$?
if [ "$status" -eq 0 ]; then
  dd if=/dev/zero of="$nb/www/big" bs=1M count=16 2>/dev/null
  busybox httpd -f -p 10.213.9.1:18080 -h "$nb/www" & httpd_pid=$!
  mac=$(ip -n $ns -br link show eth0 | awk '{print $3}')
  bundle "$nb" '["sh", "-c", "ip -o link show eth0; ip -o addr show eth0; ping -c 2 -W 10 10.213.9.1 | grep transmitted; time wget -q -O /dev/null http://10.213.9.1:18080/big && echo fetched"]'
  sed -i "s|{\"type\": \"network\"}|{\"type\": \"network\", \"path\": \"/run/netns/$ns\"}|" "$nb/config.json"
  smr --debug --log "$(log_of net)" run -b "$nb" hw-net < /dev/null > "$work/net.out" 2>&1; status=$?
  [ "$status" -eq 0 ] && grep -q "link/ether $mac" "$work/net.out" && grep -q "inet 10.213.9.2/24" "$work/net.out" \
    && grep -q " 0% packet loss" "$work/net.out" && grep -q "^fetched" "$work/net.out" \
    && ! ip -n $ns link show smtap0 >/dev/null 2>&1 && ! tc -n $ns qdisc show | grep -q ingress
  check "network: eth0 has the veth's MAC and address, ping and a 16 MiB fetch from the host end, nothing left in the netns" $? \
    "exit $status: $(tail_of "$work/net.out")" "log: $(tail_of "$(log_of net)")"
  grep -E "real|packets" "$work/net.out" | sed 's/^/# network: /'
  kill "$httpd_pid" 2>/dev/null; wait "$httpd_pid" 2>/dev/null
else
  fail "network: the test netns and veth" "ip failed (tun/veth/sch_ingress/cls_u32/act_mirred modules in L1?)"
fi
ip netns del $ns 2>/dev/null; ip link del hwkvm-veth 2>/dev/null

# Nothing left behind: no VMM process, no state.
left=$(ls "$root" 2>/dev/null | tr '\n' ' ')
[ -z "$left" ] && ! pgrep -f "sm-runc.* vmm" > /dev/null
check "no container state or VMM left" $? "state: $left" "$(pgrep -af 'sm-runc' | head -3)"

dmesg | grep -i -e 'kvm' | grep -v -e 'Nested Paging' | tail -5 | sed 's/^/# L1 dmesg: /'
echo "hwkvm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
