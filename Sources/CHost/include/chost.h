// Host-side libc calls Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef CHOST_H
#define CHOST_H
#include <spawn.h>

/// pipe2(fds, O_CLOEXEC).
int chost_pipe_cloexec(int fds[2]);
/// posix_spawn_file_actions_addclosefrom_np: close every fd >= `from` in the child.
int chost_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphans below us become our children, as they
/// do under conmon and the containerd shim (tests use it to reap the VMM process).
int chost_set_child_subreaper(void);

#endif
