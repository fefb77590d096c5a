// CGuest: the few guest-side libc calls Swift's Glibc module does not import.
#ifndef CGUEST_H
#define CGUEST_H
#include <sys/reboot.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/random.h>

/// reboot(2) with RB_AUTOBOOT: with the kernel's `reboot=t` the VM ends as a triple fault.
static inline int cguest_restart(void) { return reboot(RB_AUTOBOOT); }
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/klog.h>
#include <signal.h>

#include <fcntl.h>
/// pipe(2) with both ends close-on-exec (pipe2 needs _GNU_SOURCE; the agent is single-threaded).
static inline int cguest_pipe(int fds[2]) {
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

#include <sys/prctl.h>
#include <sys/resource.h>
/// prctl(PR_SET_NO_NEW_PRIVS) (prctl is variadic).
static inline int cguest_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
/// setrlimit(2) by resource number (Swift imports the resource argument as an enum).
static inline int cguest_setrlimit(int resource, unsigned long long soft, unsigned long long hard) {
    struct rlimit limit = { soft, hard };
    return setrlimit(resource, &limit);
}

/// wait(2) status decoding (macros in C).
static inline int cguest_exited(int status) { return WIFEXITED(status); }
static inline int cguest_exit_code(int status) { return WEXITSTATUS(status); }
static inline int cguest_signaled(int status) { return WIFSIGNALED(status); }
static inline int cguest_term_signal(int status) { return WTERMSIG(status); }
/// A child before exec: an empty signal mask (the agent blocks SIGCHLD for its
/// signalfd). Dispositions need nothing: handlers are reset by exec itself, and only
/// ignored signals would survive it, which the agent never sets (a loop over all 64
/// signals cost 64 emulated syscalls per process on nested hosts).
static inline void cguest_reset_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

#include <sys/signalfd.h>
/// Blocks SIGCHLD and returns a non-blocking, close-on-exec signalfd for it (the
/// agent polls it with its channel and the processes' output, instead of waking on a
/// timer to reap); -1 and errno on failure.
static inline int cguest_sigchld_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/// A connected AF_VSOCK stream socket to (cid, port), close-on-exec; -1 and errno on failure.
static inline int cguest_vsock_connect(unsigned int cid, unsigned int port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_vm address;
    memset(&address, 0, sizeof address);
    address.svm_family = AF_VSOCK;
    address.svm_cid = cid;
    address.svm_port = port;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
#include <linux/capability.h>
#include <sys/syscall.h>
/// Capabilities for the container process, as runc applies them. Masks are bit sets
/// of capability numbers (all fit in 64 bits).
/// Drops from the bounding set every capability up to `last` not in `keep`.
static inline int cguest_drop_bounding(unsigned long long keep, int last) {
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return -1;
    }
    return 0;
}
/// prctl(PR_SET_KEEPCAPS): keep permitted capabilities across setuid away from root.
static inline int cguest_keep_capabilities(int on) { return prctl(PR_SET_KEEPCAPS, on, 0, 0, 0); }
/// capset(2), version 3: effective, permitted and inheritable sets of this thread.
static inline int cguest_capset(unsigned long long effective, unsigned long long permitted, unsigned long long inheritable) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(unsigned)effective, (unsigned)permitted, (unsigned)inheritable},
        {(unsigned)(effective >> 32), (unsigned)(permitted >> 32), (unsigned)(inheritable >> 32)},
    };
    return (int)syscall(SYS_capset, &header, data);
}
/// The ambient set: cleared, then each capability in `ambient` raised. The kernel
/// refuses (EPERM) one that is not both permitted and inheritable; like runc, that one
/// is left out rather than failing the container (`runc spec` asks for such ones).
static inline int cguest_set_ambient(unsigned long long ambient, int last) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return -1;
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        if ((ambient & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0 && errno != EPERM) return -1;
    }
    return 0;
}

#include <linux/filter.h>
#include <linux/seccomp.h>
/// Loads a seccomp BPF program (the container's profile, compiled by the host) on
/// this thread: seccomp(SECCOMP_SET_MODE_FILTER). Needs no_new_privs or CAP_SYS_ADMIN.
static inline int cguest_load_seccomp(const void *program, unsigned long bytes) {
    struct sock_fprog prog = {(unsigned short)(bytes / sizeof(struct sock_filter)), (struct sock_filter *)program};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/// Credits `length` (at most 64) bytes of host randomness to the kernel's entropy
/// pool (RNDADDENTROPY on `fd`, an open /dev/urandom) and reseeds the CRNG from it
/// (RNDRESEEDCRNG): a guest restored from a snapshot must not repeat the random
/// numbers of its siblings. 0, or -1 and errno.
static inline int cguest_add_entropy(int fd, const unsigned char *bytes, int length) {
    struct { int entropy_count; int buf_size; unsigned char buf[64]; } info;
    if (length < 0 || length > 64) { errno = EINVAL; return -1; }
    info.entropy_count = length * 8;
    info.buf_size = length;
    memcpy(info.buf, bytes, (size_t)length);
    if (ioctl(fd, RNDADDENTROPY, &info) != 0) return -1;
    return ioctl(fd, RNDRESEEDCRNG);
}

/// The whole kernel log buffer (syslog(2) SYSLOG_ACTION_READ_ALL): bytes read or -1.
static inline int cguest_read_kernel_log(char *buffer, int length) {
    return klogctl(3, buffer, length);
}

/// A container process to start (`cguest_spawn`): everything decided by the agent
/// beforehand, so that the child only makes system calls.
struct cguest_spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    /// stdin, stdout, stderr (pipes), or all three the pty slave with `terminal`.
    int stdio[3];
    int terminal;
    const char *root;
    const char *cwd;
    /// -1: keep the agent's.
    int umask;
    /// "N\n" for /proc/self/oom_score_adj, or NULL.
    const char *oom_score_adj;
    int rlimit_count;
    const int *rlimit_resources;
    const unsigned long long *rlimit_soft;
    const unsigned long long *rlimit_hard;
    int has_capabilities;
    unsigned long long bounding, effective, permitted, inheritable, ambient;
    int last_capability;
    int group_count;
    const unsigned int *groups;
    unsigned int uid, gid;
    int no_new_privileges;
    const void *seccomp;
    unsigned long seccomp_bytes;
};

/// Starts the process with vfork: the child shares the agent's memory until it
/// execs, so no page table is copied and the agent takes no copy-on-write faults
/// meanwhile (both are emulated guest kernel work on nested hosts, and sizeable for
/// an agent whose pages are all mapped). The child enters the root, sets the limits,
/// user and capabilities as runc orders them, and execs; on failure it writes
/// `sm-init: <what>: <error>` to its stderr and exits 1 (126/127 for exec, as runc).
/// Returns the pid, or -1 and errno.
int cguest_spawn(const struct cguest_spawn_request *request);

/// Network interface configuration (cguest.c): 0 or -errno.
int cguest_link_set_up(const char *name, int up);
int cguest_link_set_mac(const char *name, const unsigned char *mac);
int cguest_link_set_mtu(const char *name, int mtu);
int cguest_address_add(const char *label, const char *address, int prefix);
int cguest_route_add(const char *device, const char *destination, int prefix, const char *gateway);
int cguest_link_unbind(const char *name);
#endif
