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
