// libc calls Swift's Glibc module does not expose: they need _GNU_SOURCE, are
// variadic (ioctl, prctl) or are macros (CMSG_*). Used by sm-runc and by the guest
// agent (plain libc, statically linkable).
#ifndef CPOSIX_H
#define CPOSIX_H
#include <spawn.h>
#include <sys/types.h>
#include <sys/sysmacros.h>

#include <sys/prctl.h>

/// prctl(2) is variadic: PR_SET_DUMPABLE (0: no core, /proc entries root-owned).
static inline int cposix_set_dumpable(int dumpable) { return prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0); }

#include <linux/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>

/// The id of the mount `fd` is on (statx STATX_MNT_ID, Linux 5.8+), which st_dev does
/// not tell apart: one directory bind-mounted twice, read-write and read-only, has
/// one st_dev and st_ino but two mounts. -1 with errno when unknown.
static inline int cposix_mount_id(int fd, unsigned long long *id) {
    struct statx sx;
    if (syscall(SYS_statx, fd, "", 0x1000 /* AT_EMPTY_PATH */, STATX_MNT_ID, &sx) != 0) return -1;
    if (!(sx.stx_mask & STATX_MNT_ID)) { errno = ENOSYS; return -1; }
    *id = sx.stx_mnt_id;
    return 0;
}

/// makedev(3) is a macro; device numbers for mknod.
static inline dev_t cposix_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }

/// pipe2(fds, O_CLOEXEC).
int cposix_pipe_cloexec(int fds[2]);
/// posix_spawn_file_actions_addclosefrom_np: close every fd >= `from` in the child.
int cposix_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);
/// posix_spawnattr flags: POSIX_SPAWN_SETSID (a GNU extension).
int cposix_spawn_setsid(posix_spawnattr_t *attributes);
/// The child starts with the default disposition and unblocked for the signals a
/// runtime handles (INT, TERM, HUP, QUIT, USR1, USR2, WINCH, PIPE, CHLD), whatever the
/// parent set for itself (`run` ignores and forwards them). Keeps the other flags.
int cposix_spawn_default_signals(posix_spawnattr_t *attributes);
/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphans below us become our children, as they
/// do under conmon and the containerd shim (tests use it to reap the VMM process).
int cposix_set_child_subreaper(void);

/// A new pty pair from /dev/ptmx (both ends O_CLOEXEC, the master O_NOCTTY): 0 or -1.
int cposix_open_pty(int *master, int *slave);
/// A new pty pair from the devpts instance whose ptmx is `ptmx` (e.g. a container's
/// /dev/pts/ptmx): the slave is opened from the master (TIOCGPTPEER), no path needed.
int cposix_open_pty_in(const char *ptmx, int *master, int *slave);
/// openat2(dirfd, path, {O_PATH, RESOLVE_IN_ROOT}): `path` resolved as if `dirfd` were
/// the root (absolute symlinks and `..` stay inside). -1 with errno on failure.
int cposix_open_path_in_root(int dirfd, const char *path);
/// open(path, O_PATH | O_DIRECTORY | O_CLOEXEC): a directory to resolve from, without
/// opening it for reading (which a FUSE file system answers with OPENDIR/RELEASEDIR).
int cposix_open_directory_path(const char *path);
/// setns(2) (glibc declares it only with _GNU_SOURCE): 0, or -1 and errno.
int cposix_setns(int fd, int type);
/// Puts a terminal in raw mode (cfmakeraw): no echo, no line editing, no signals.
int cposix_make_raw(int fd);
/// ioctl(fd, TIOCSCTTY, 0): makes the terminal the caller's controlling terminal.
int cposix_set_controlling_terminal(int fd);
/// ioctl TIOCGWINSZ / TIOCSWINSZ.
int cposix_get_window_size(int fd, unsigned short *rows, unsigned short *columns);
int cposix_set_window_size(int fd, unsigned short rows, unsigned short columns);
/// Sends `fd` over the unix socket `sock` as one SCM_RIGHTS message with `payload`.
int cposix_send_fd(int sock, int fd, const char *payload);
/// Receives one fd sent with SCM_RIGHTS (tests: the engine's side of --console-socket).
int cposix_receive_fd(int sock);

/// The pid of the process at the other end of a unix socket (SO_PEERCRED), or -1.
int cposix_peer_pid(int sock);
/// Sends `count` fds (at most 3) with `length` bytes of `data` in one SCM_RIGHTS message.
int cposix_send_fds(int sock, const int *fds, int count, const void *data, unsigned long length);
/// Receives bytes and up to 3 fds (SCM_RIGHTS, close-on-exec); returns the byte count
/// (0 at EOF, -1 on error) and stores the fds received in `fds`/`count`.
long cposix_receive_fds(int sock, void *data, unsigned long length, int *fds, int *count);

/// unshare(CLONE_NEWNS): a mount namespace of our own (the VMM's jail). Through
/// syscall(2): Glibc's unshare needs _GNU_SOURCE.
static inline int cposix_unshare_mount_namespace(void) { return (int)syscall(SYS_unshare, 0x00020000 /* CLONE_NEWNS */); }
/// gettid(2): Glibc's wrapper needs _GNU_SOURCE.
static inline int cposix_gettid(void) { return (int)syscall(SYS_gettid); }
/// pivot_root(2) has no glibc wrapper.
static inline int cposix_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

#endif
