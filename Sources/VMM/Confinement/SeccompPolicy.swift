import CKVM
import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// The VMM's seccomp allow-lists, one per thread kind, as one readable list each.
/// Anything else ends the whole VMM process (see `Seccomp`).
///
/// Filters stack: `process` is installed on every thread (TSYNC) before the guest
/// runs; the vCPU and event-loop threads then add their own, narrower list, so
/// their effective list is the intersection. Lists were drawn from straces of
/// create/start/run/kill with stdio, terminals and virtio-fs traffic, then pruned.
public enum SeccompPolicy {
    /// The ioctls a vCPU thread makes once the guest runs.
    static let vcpuIoctls: [UInt64] = [
        CKVM_RUN,                                   // run the guest
        CKVM_GET_REGS, CKVM_SET_REGS,               // step over an emulator quirk (FWAIT/INT3 on nested hosts)
        CKVM_GET_SREGS,                             // decode the guest's instruction at RIP for that
        CKVM_GET_VCPU_EVENTS, CKVM_SET_VCPU_EVENTS, // inject a breakpoint exception back into the guest
        CKVM_GET_MP_STATE,                          // the profiler's per-vCPU samples (an AP waiting for its SIPI)
    ].map { UInt64($0) }

    /// ioctls other threads make: the terminal size (TIOCGWINSZ) for a console.
    static let otherIoctls: [UInt64] = [UInt64(TIOCGWINSZ)]

    /// The flags glibc's pthread_create passes to clone (nptl/pthread_create.c): the
    /// only clone the VMM makes once confined.
    /// (Glibc's module hides the CLONE_ names without _GNU_SOURCE: <bits/sched.h> values.)
    static let threadCloneFlags: UInt64 = 0x100 /* CLONE_VM */ | 0x200 /* CLONE_FS */ | 0x400 /* CLONE_FILES */
        | 0x40000 /* CLONE_SYSVSEM */ | 0x800 /* CLONE_SIGHAND */ | 0x10000 /* CLONE_THREAD */
        | 0x80000 /* CLONE_SETTLS */ | 0x100000 /* CLONE_PARENT_SETTID */ | 0x200000 /* CLONE_CHILD_CLEARTID */

    /// The process list for the VMM whose pid is `pid`: `kill` only on itself (it
    /// re-raises the container process's signal; never another process).
    public static func process(pid: pid_t) -> [SyscallRule] {
        process.map { rule in
            rule.name == "kill"
                ? SyscallRule("kill", "raise the container process's signal on ourselves: our own pid only",
                              argument: (0, [UInt64(UInt32(bitPattern: pid))]))
                : rule
        }
    }

    /// prctl options used after confinement.
    static let prctlOptions: [UInt64] = [
        UInt64(PR_SET_NAME),                        // name a new thread (sm-vcpu0, sm-events)
        UInt64(PR_GET_NAME),                        // Foundation reads a new thread's name
        UInt64(PR_GET_NO_NEW_PRIVS),                // libseccomp checks it before loading a thread's filter
        UInt64(PR_SET_NO_NEW_PRIVS),                // ...and sets it (already set: no change)
        UInt64(PR_GET_SECCOMP),                     // libseccomp probes the mode
        UInt64(PR_SET_DUMPABLE),                    // no host core when the VMM re-raises the container's signal
    ]

    /// Every thread (the widest list): memory, threads, time, signals, the files and
    /// sockets of the state directory, stdio relay, and what the two narrower lists
    /// below need (a thread's effective list is the intersection).
    public static let process: [SyscallRule] = [
        // I/O on descriptors opened before confinement (stdio, sockets, eventfds, KVM).
        SyscallRule("read", "stdio, sockets, eventfds, the FUSE server's files"),
        SyscallRule("write", "stdio relay, sockets, eventfds, log lines, state records"),
        SyscallRule("readv", "Swift/Foundation buffered reads"),
        SyscallRule("writev", "Swift/Foundation buffered writes"),
        SyscallRule("pread64", "virtio-fs READ"),
        SyscallRule("pwrite64", "virtio-fs WRITE"),
        SyscallRule("close", "descriptors of finished requests and connections"),
        SyscallRule("dup", "a descriptor kept past its owner's close"),
        SyscallRule("fcntl", "O_NONBLOCK / FD_CLOEXEC on new descriptors; virtio-fs O_PATH reopen checks"),
        SyscallRule("lseek", "virtio-fs LSEEK and directory rewinds"),
        SyscallRule("ioctl", "see vcpuIoctls and otherIoctls", argument: (1, vcpuIoctls + otherIoctls)),
        // The virtio-fs server, relative to the O_PATH descriptors it holds.
        SyscallRule("openat", "virtio-fs OPEN/CREATE/LOOKUP via /proc/self/fd; state records; the log file"),
        SyscallRule("newfstatat", "virtio-fs GETATTR/LOOKUP (fstatat with AT_EMPTY_PATH)"),
        SyscallRule("fstat", "descriptor metadata (Foundation, the FUSE server)"),
        SyscallRule("statx", "Foundation file metadata; virtio-fs: the mount of an inode (STATX_MNT_ID)"),
        SyscallRule("statfs", "virtio-fs STATFS"),
        SyscallRule("fstatfs", "virtio-fs STATFS on a descriptor"),
        SyscallRule("readlinkat", "virtio-fs READLINK"),
        SyscallRule("getdents64", "virtio-fs READDIR(PLUS)"),
        SyscallRule("mkdirat", "virtio-fs MKDIR"),
        SyscallRule("mknodat", "virtio-fs MKNOD"),
        SyscallRule("symlinkat", "virtio-fs SYMLINK"),
        SyscallRule("linkat", "virtio-fs LINK"),
        SyscallRule("unlinkat", "virtio-fs UNLINK/RMDIR; stale sockets in the state directory"),
        SyscallRule("unlink", "the control socket at the end"),
        SyscallRule("mkdir", "the control socket is bound in a private directory (mkdtemp, UnixSocket.listen)"),
        SyscallRule("rmdir", "that directory, once the socket is renamed into place"),
        SyscallRule("renameat", "virtio-fs RENAME"),
        SyscallRule("renameat2", "virtio-fs RENAME2 (exchange, noreplace)"),
        SyscallRule("rename", "atomic state.json updates; the control socket into place"),
        SyscallRule("fchownat", "virtio-fs SETATTR uid/gid, CREATE as the guest's user"),
        SyscallRule("fchown", "virtio-fs SETATTR on an open file"),
        SyscallRule("fchmodat", "virtio-fs SETATTR mode; the control socket's mode"),
        SyscallRule("fchmod", "virtio-fs SETATTR mode on an open file"),
        SyscallRule("chmod", "the control socket's mode, before it is renamed into place (Glibc chmod)"),
        SyscallRule("utimensat", "virtio-fs SETATTR times"),
        SyscallRule("truncate", "virtio-fs SETATTR size by path (/proc/self/fd)"),
        SyscallRule("ftruncate", "virtio-fs SETATTR size"),
        SyscallRule("fallocate", "virtio-fs FALLOCATE"),
        SyscallRule("fsync", "virtio-fs FSYNC"),
        SyscallRule("fdatasync", "virtio-fs FSYNC with datasync"),
        SyscallRule("syncfs", "virtio-fs SYNCFS"),
        SyscallRule("getxattr", "virtio-fs GETXATTR (by /proc/self/fd path)"),
        SyscallRule("lgetxattr", "virtio-fs GETXATTR"),
        SyscallRule("fgetxattr", "virtio-fs GETXATTR on an open file"),
        SyscallRule("setxattr", "virtio-fs SETXATTR"),
        SyscallRule("lsetxattr", "virtio-fs SETXATTR"),
        SyscallRule("fsetxattr", "virtio-fs SETXATTR on an open file"),
        SyscallRule("listxattr", "virtio-fs LISTXATTR"),
        SyscallRule("llistxattr", "virtio-fs LISTXATTR"),
        SyscallRule("flistxattr", "virtio-fs LISTXATTR on an open file"),
        SyscallRule("removexattr", "virtio-fs REMOVEXATTR"),
        SyscallRule("lremovexattr", "virtio-fs REMOVEXATTR"),
        SyscallRule("fremovexattr", "virtio-fs REMOVEXATTR on an open file"),
        SyscallRule("access", "Foundation existence checks"),
        SyscallRule("faccessat", "virtio-fs ACCESS"),
        SyscallRule("faccessat2", "virtio-fs ACCESS (glibc 2.33+)"),
        SyscallRule("getcwd", "Foundation path handling"),
        SyscallRule("readlink", "Foundation path handling"),
        // Unix sockets: the agent's hybrid vsock, the control socket. AF_UNIX only.
        SyscallRule("socket", "connect the guest's vsock streams to <agent.sock>_<port>; the control socket",
                    argument: (0, [UInt64(AF_UNIX)])),
        SyscallRule("connect", "the hybrid vsock's host side"),
        SyscallRule("bind", "the control socket, made once the container is created"),
        SyscallRule("listen", "the control socket"),
        SyscallRule("accept", "the agent's connection; control requests"),
        SyscallRule("accept4", "the same, close-on-exec"),
        SyscallRule("setsockopt", "receive timeouts on control connections"),
        SyscallRule("getsockopt", "SO_ERROR after a non-blocking connect"),
        SyscallRule("shutdown", "ending the agent session and the control socket"),
        SyscallRule("sendto", "vsock stream data to the host side"),
        SyscallRule("recvfrom", "vsock stream data from the host side"),
        SyscallRule("sendmsg", "vsock stream data (scatter)"),
        SyscallRule("recvmsg", "vsock stream data (scatter)"),
        // Event loop and wakeups.
        SyscallRule("epoll_create1", "Dispatch's signal sources"),
        SyscallRule("epoll_ctl", "watching queue notifications and connections"),
        SyscallRule("epoll_wait", "the event loop"),
        SyscallRule("epoll_pwait", "the event loop (glibc may use it)"),
        SyscallRule("poll", "bounded waits on sockets"),
        SyscallRule("ppoll", "bounded waits on sockets"),
        SyscallRule("eventfd2", "Dispatch wakeups"),
        SyscallRule("signalfd4", "Dispatch signal sources (SIGWINCH for a console)"),
        SyscallRule("timerfd_create", "Dispatch timers (the --profile-ms sampler)"),
        SyscallRule("timerfd_settime", "Dispatch timers"),
        // Memory.
        SyscallRule("mmap", "the allocator, thread stacks"),
        SyscallRule("munmap", "the allocator, thread stacks"),
        SyscallRule("mprotect", "thread stack guard pages"),
        SyscallRule("mremap", "the allocator"),
        SyscallRule("madvise", "the allocator returning memory; virtio-balloon releases reported free guest pages (MADV_DONTNEED)"),
        SyscallRule("brk", "the allocator"),
        // Threads, time, identity.
        SyscallRule("clone3", "fails with ENOSYS: its flags are in memory a filter cannot read; glibc then falls back to clone",
                    failsWith: ENOSYS),
        SyscallRule("clone", "new threads (the vCPU, the event loop, Dispatch) with exactly pthread_create's flags: no fork, no vfork, no new namespace",
                    argument: (0, [threadCloneFlags])),
        SyscallRule("set_robust_list", "thread start"),
        SyscallRule("rseq", "thread start (glibc)"),
        SyscallRule("futex", "locks and condition variables"),
        SyscallRule("sched_yield", "spin locks"),
        SyscallRule("sched_getaffinity", "Dispatch sizing its pool"),
        SyscallRule("setpriority", "Dispatch worker priorities"),
        SyscallRule("getpriority", "Dispatch worker priorities"),
        SyscallRule("nanosleep", "bounded retries"),
        SyscallRule("clock_nanosleep", "bounded retries"),
        SyscallRule("clock_gettime", "timing (no vDSO clock on some nested hosts)"),
        SyscallRule("gettimeofday", "timestamps in state records and logs"),
        SyscallRule("getrandom", "Swift's hashing seeds"),
        SyscallRule("getpid", "raise the process's own signal at its end"),
        SyscallRule("gettid", "thread identity (Dispatch, locks)"),
        SyscallRule("getuid", "Foundation"),
        SyscallRule("geteuid", "Foundation"),
        SyscallRule("getgid", "Foundation"),
        SyscallRule("getegid", "Foundation"),
        SyscallRule("prctl", "thread names and the filter checks below", argument: (0, prctlOptions)),
        SyscallRule("seccomp", "each VMM thread adds its narrower filter"),
        // Signals: the vCPU kick, SIGWINCH for a console, and dying like the process.
        SyscallRule("rt_sigaction", "the vCPU kick handler; SIG_DFL before raising the process's signal"),
        SyscallRule("rt_sigprocmask", "thread signal masks"),
        SyscallRule("rt_sigreturn", "return from the kick handler"),
        SyscallRule("rt_sigsuspend", "a thread waiting for a signal (Dispatch, the runtime)"),
        SyscallRule("sigaltstack", "Swift's crash handler stack per thread"),
        SyscallRule("tgkill", "kick the vCPU thread out of KVM_RUN; raise the container process's signal"),
        SyscallRule("kill", "raise the container process's signal on ourselves"),
        SyscallRule("exit", "a thread ends"),
        SyscallRule("exit_group", "the VMM ends"),
    ]

    /// A vCPU thread: KVM_RUN and the handling of its exits (device registers live
    /// in this process's memory; notifications leave by ioeventfd in the kernel).
    public static let vcpu: [SyscallRule] = [
        SyscallRule("ioctl", "KVM_RUN and the quirk handling in vcpuIoctls", argument: (1, vcpuIoctls)),
        SyscallRule("read", "eventfd reads when a device is reset from its registers"),
        SyscallRule("write", "eventfd signals (an interrupt from a device register write); log lines"),
        SyscallRule("openat", "the --log file, opened per line"),
        SyscallRule("close", "a device reset closes its old notifiers; the log file"),
        SyscallRule("epoll_ctl", "a device activated by its driver starts watching its queues"),
        SyscallRule("clock_gettime", "KVM_RUN time accounting (CLOCK_THREAD_CPUTIME_ID)"),
        SyscallRule("futex", "locks shared with the event loop"),
        SyscallRule("sched_yield", "spin locks"),
        SyscallRule("mmap", "the allocator"),
        SyscallRule("munmap", "the allocator"),
        SyscallRule("mprotect", "the allocator"),
        SyscallRule("madvise", "the allocator; the thread's stack at exit; virtio-balloon reports when queue notifications exit to user space (no ioeventfd)"),
        SyscallRule("brk", "the allocator"),
        SyscallRule("rt_sigprocmask", "signal masks around the kick"),
        SyscallRule("rt_sigreturn", "return from the kick handler"),
        SyscallRule("tgkill", "the first vCPU to end kicks the others out of KVM_RUN (the kick signal only)",
                    argument: (2, [UInt64(ckvm_kick_signal())])),
        SyscallRule("gettid", "thread identity (locks)"),
        SyscallRule("getpid", "thread identity"),
        SyscallRule("exit", "the thread ends with the guest"),
    ]

    /// The event-loop thread: device backends (virtio-fs, vsock, console, balloon:
    /// its reporting queue's notifications arrive here, and it keeps `madvise`).
    public static let eventLoop: [SyscallRule] = process.filter { rule in
        // Everything the process list allows, except thread, signal and socket-server
        // management this thread never does.
        !["clone3", "clone", "bind", "listen", "accept", "accept4", "setsockopt", "seccomp", "prctl",
          "rt_sigaction", "sigaltstack", "tgkill", "kill", "rename", "unlink", "chmod", "mkdir", "rmdir", "signalfd4",
          "epoll_create1", "eventfd2", "timerfd_create", "timerfd_settime", "rt_sigsuspend", "setpriority", "getpriority", "sched_getaffinity",
          "exit_group", "getuid", "geteuid", "getgid", "getegid", "getcwd", "readlink", "access"]
            .contains(rule.name)
    }.map { rule in
        rule.name == "ioctl" ? SyscallRule("ioctl", "none but the terminal size", argument: (1, otherIoctls)) : rule
    }

    /// The network thread (`sm-net`): the virtio-net queues and the tap. It moves
    /// frames between guest memory and the tap opened before confinement; it makes no
    /// socket and opens nothing but the log file, and has no ioctl at all.
    public static let network: [SyscallRule] = [
        SyscallRule("read", "frames from the tap; queue notifications (eventfds)"),
        SyscallRule("write", "frames to the tap; the interrupt eventfd; log lines"),
        SyscallRule("epoll_wait", "the loop"),
        SyscallRule("epoll_pwait", "the loop (glibc may use it)"),
        SyscallRule("epoll_ctl", "watch the tap only while the guest has receive buffers"),
        SyscallRule("openat", "the --log file, opened per line"),
        SyscallRule("close", "the log file"),
        SyscallRule("futex", "the transport lock, shared with the vCPUs"),
        SyscallRule("sched_yield", "spin locks"),
        SyscallRule("clock_gettime", "timestamps in log lines"),
        SyscallRule("mmap", "the allocator"),
        SyscallRule("munmap", "the allocator"),
        SyscallRule("mprotect", "the allocator"),
        SyscallRule("madvise", "the allocator; the thread's stack at exit"),
        SyscallRule("brk", "the allocator"),
        SyscallRule("rt_sigprocmask", "signal masks"),
        SyscallRule("rt_sigreturn", "return from a signal handler"),
        SyscallRule("gettid", "thread identity (locks)"),
        SyscallRule("getpid", "thread identity"),
        SyscallRule("exit", "the thread ends with the machine"),
    ]
}
