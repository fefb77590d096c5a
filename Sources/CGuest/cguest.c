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

// Network interface configuration with the classic ioctls (no netlink library in a
// static agent). Each returns 0 or -errno.
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdint.h>

static int cguest_inet_socket(void) { return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

static int cguest_ifreq_ioctl(unsigned long request, struct ifreq *ifr) {
    int fd = cguest_inet_socket();
    if (fd < 0) return -errno;
    int rc = ioctl(fd, request, ifr);
    int err = errno;
    close(fd);
    return rc == 0 ? 0 : -err;
}

int cguest_link_set_up(const char *name, int up) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int rc = cguest_ifreq_ioctl(SIOCGIFFLAGS, &ifr);
    if (rc != 0) return rc;
    if (up) ifr.ifr_flags |= IFF_UP; else ifr.ifr_flags &= ~IFF_UP;
    return cguest_ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

int cguest_link_set_mac(const char *name, const unsigned char *mac) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_hwaddr.sa_family = 1;            // ARPHRD_ETHER
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    return cguest_ifreq_ioctl(SIOCSIFHWADDR, &ifr);
}

int cguest_link_set_mtu(const char *name, int mtu) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_mtu = mtu;
    return cguest_ifreq_ioctl(SIOCSIFMTU, &ifr);
}

static uint32_t cguest_prefix_mask(int prefix) {
    return prefix <= 0 ? 0 : htonl(prefix >= 32 ? 0xffffffffu : ~((1u << (32 - prefix)) - 1));
}

static void cguest_sockaddr(struct sockaddr *out, uint32_t address) {
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = address;
}

/// `label`: the interface name, or an alias ("eth0:1") for a further address.
int cguest_address_add(const char *label, const char *address, int prefix) {
    struct in_addr parsed;
    if (prefix < 0 || prefix > 32 || inet_pton(AF_INET, address, &parsed) != 1) return -EINVAL;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, label, IFNAMSIZ - 1);
    cguest_sockaddr(&ifr.ifr_addr, parsed.s_addr);
    int rc = cguest_ifreq_ioctl(SIOCSIFADDR, &ifr);
    if (rc != 0) return rc;
    cguest_sockaddr(&ifr.ifr_netmask, cguest_prefix_mask(prefix));
    return cguest_ifreq_ioctl(SIOCSIFNETMASK, &ifr);
}

/// `destination` NULL: the default route; `gateway` NULL: on the link.
int cguest_route_add(const char *device, const char *destination, int prefix, const char *gateway) {
    struct in_addr dst = { 0 }, gw = { 0 };
    if (destination && (prefix < 0 || prefix > 32 || inet_pton(AF_INET, destination, &dst) != 1)) return -EINVAL;
    if (gateway && inet_pton(AF_INET, gateway, &gw) != 1) return -EINVAL;
    struct rtentry route;
    memset(&route, 0, sizeof route);
    cguest_sockaddr(&route.rt_dst, destination ? dst.s_addr : 0);
    cguest_sockaddr(&route.rt_genmask, destination ? cguest_prefix_mask(prefix) : 0);
    cguest_sockaddr(&route.rt_gateway, gw.s_addr);
    route.rt_flags = RTF_UP | (gateway ? RTF_GATEWAY : 0) | (destination && prefix == 32 ? RTF_HOST : 0);
    route.rt_dev = (char *)device;
    int fd = cguest_inet_socket();
    if (fd < 0) return -errno;
    int rc = ioctl(fd, SIOCADDRT, &route);
    int err = errno;
    close(fd);
    return rc == 0 || err == EEXIST ? 0 : -err;
}

/// Detaches the virtio-net driver from `name`'s device (sysfs unbind): the
/// interface disappears, as a container without a network has `lo` only.
int cguest_link_unbind(const char *name) {
    char path[128], target[256];
    snprintf(path, sizeof path, "/sys/class/net/%s/device", name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) return -errno;
    target[n] = 0;
    const char *device = strrchr(target, '/');
    device = device ? device + 1 : target;
    int fd = open("/sys/bus/virtio/drivers/virtio_net/unbind", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t w = write(fd, device, strlen(device));
    int err = errno;
    close(fd);
    return w < 0 ? -err : 0;
}
