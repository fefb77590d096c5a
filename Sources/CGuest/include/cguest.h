// CGuest: the few guest-side libc calls Swift's Glibc module does not import.
#ifndef CGUEST_H
#define CGUEST_H
#include <sys/reboot.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <string.h>

/// reboot(2) with RB_AUTOBOOT: with the kernel's `reboot=t` the VM ends as a triple fault.
static inline int cguest_restart(void) { return reboot(RB_AUTOBOOT); }
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
#endif
