#define _GNU_SOURCE
#include "cguest.h"
#include <stdio.h>
#include <grp.h>
#include <sys/stat.h>

/// In the child: the failure, as the agent's Swift child reported it, and the end.
static void child_fail(const char *what, int code) {
    char line[256];
    int n = snprintf(line, sizeof line, "sm-init: %s: %s\n", what, strerror(errno));
    if (n > 0) { ssize_t ignored = write(2, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1)); (void)ignored; }
    _exit(code);
}

static void child(const struct cguest_spawn_request *r) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (r->terminal) {
        if (dup2(r->stdio[0], 0) < 0 || dup2(r->stdio[0], 1) < 0 || dup2(r->stdio[0], 2) < 0) child_fail("dup2", 1);
        if (setsid() < 0 || ioctl(0, TIOCSCTTY, 0) != 0) child_fail("set the controlling terminal", 1);
    } else {
        for (int fd = 0; fd < 3; fd++) if (dup2(r->stdio[fd], fd) < 0) child_fail("dup2", 1);
    }
    if (r->oom_score_adj) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        size_t length = strlen(r->oom_score_adj);
        if (fd < 0 || write(fd, r->oom_score_adj, length) != (ssize_t)length) child_fail("write oom_score_adj", 1);
        close(fd);
    }
    for (int i = 0; i < r->rlimit_count; i++) {
        struct rlimit limit = { r->rlimit_soft[i], r->rlimit_hard[i] };
        if (setrlimit(r->rlimit_resources[i], &limit) != 0) child_fail("setrlimit", 1);
    }
    if (chroot(r->root) != 0 || chdir("/") != 0) child_fail("chroot", 1);
    if (chdir(r->cwd) != 0) child_fail("chdir", 1);
    if (r->umask >= 0) umask((mode_t)r->umask);
    // The container's seccomp profile, as runc orders it: without no_new_privs it
    // needs CAP_SYS_ADMIN, so it goes in now, while still root; with it, last.
    if (r->seccomp && !r->no_new_privileges && cguest_load_seccomp(r->seccomp, r->seccomp_bytes) != 0) child_fail("load the seccomp profile", 1);
    // Capabilities as runc applies them: bounding set first (as root), keep the
    // permitted set across the uid change, then the exact sets.
    if (r->has_capabilities) {
        if (cguest_drop_bounding(r->bounding, r->last_capability) != 0) child_fail("drop bounding capabilities", 1);
        if (cguest_keep_capabilities(1) != 0) child_fail("prctl PR_SET_KEEPCAPS", 1);
    }
    if (setgroups((size_t)r->group_count, (const gid_t *)r->groups) != 0 || setgid(r->gid) != 0 || setuid(r->uid) != 0) {
        child_fail("set user", 1);
    }
    if (r->has_capabilities) {
        cguest_keep_capabilities(0);
        if (cguest_capset(r->effective, r->permitted, r->inheritable) != 0) child_fail("capset", 1);
        if (cguest_set_ambient(r->ambient, r->last_capability) != 0) child_fail("raise ambient capabilities", 1);
    }
    if (r->no_new_privileges) {
        if (cguest_set_no_new_privs() != 0) child_fail("prctl PR_SET_NO_NEW_PRIVS", 1);
        if (r->seccomp && cguest_load_seccomp(r->seccomp, r->seccomp_bytes) != 0) child_fail("load the seccomp profile", 1);
    }
    execve(r->path, r->argv, r->envp);
    // As runc reports it: 127 when there is no such file, 126 when it cannot run.
    int code = errno == ENOENT ? 127 : 126;
    char what[200];
    snprintf(what, sizeof what, "exec %s", r->argv[0] ? r->argv[0] : r->path);
    child_fail(what, code);
}

int cguest_spawn(const struct cguest_spawn_request *request) {
    pid_t pid = vfork();
    if (pid == 0) {
        child(request);
        _exit(1);
    }
    return pid;
}
