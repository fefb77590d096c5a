#define _GNU_SOURCE
#include <pthread.h>
#include "ckvm.h"

int ckvm_set_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

// File-server calls that glibc declares only under _GNU_SOURCE (see ckvm.h).
#include <fcntl.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

int ckvm_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}
int ckvm_fallocate(int fd, int mode, int64_t offset, int64_t length) { return fallocate(fd, mode, offset, length); }
ssize_t ckvm_getxattr(const char *path, const char *name, void *value, size_t size) { return getxattr(path, name, value, size); }
int ckvm_setxattr(const char *path, const char *name, const void *value, size_t size, int flags) {
    return setxattr(path, name, value, size, flags);
}
ssize_t ckvm_listxattr(const char *path, char *list, size_t size) { return listxattr(path, list, size); }
int ckvm_removexattr(const char *path, const char *name) { return removexattr(path, name); }
ssize_t ckvm_getdents64(int fd, void *buffer, size_t size) { return getdents64(fd, buffer, size); }
int ckvm_syncfs(int fd) { return syncfs(fd); }

// A tap in another network namespace (see ckvm.h).
#include <sched.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <string.h>

int ckvm_open_tap(const char *netns_path, const char *name, int *failed_step) {
    int saved = -1, target = -1, fd = -1, err = 0;
    *failed_step = 0;
    if ((saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) { *failed_step = 1; return -errno; }
    if ((target = open(netns_path, O_RDONLY | O_CLOEXEC)) < 0) { err = errno; *failed_step = 2; goto out; }
    if (setns(target, CLONE_NEWNET) != 0) { err = errno; *failed_step = 3; goto out; }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { err = errno; *failed_step = 4; }
    else {
        struct ifreq request;
        memset(&request, 0, sizeof request);
        request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        strncpy(request.ifr_name, name, IFNAMSIZ - 1);
        int header = 12;   // struct virtio_net_hdr_v1, as the guest's driver uses it
        if (ioctl(fd, TUNSETIFF, &request) != 0) { err = errno; *failed_step = 5; close(fd); fd = -1; }
        else if (ioctl(fd, TUNSETVNETHDRSZ, &header) != 0) { err = errno; *failed_step = 7; close(fd); fd = -1; }
        else if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) != 0) {
            err = errno; *failed_step = 8; close(fd); fd = -1;
        }
    }
    if (setns(saved, CLONE_NEWNET) != 0 && fd >= 0) {
        // This thread cannot go home: fail rather than leave it in the container's netns.
        err = errno; *failed_step = 6; close(fd); fd = -1;
    }
out:
    if (target >= 0) close(target);
    close(saved);
    return fd >= 0 ? fd : -err;
}
