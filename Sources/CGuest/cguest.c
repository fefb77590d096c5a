#include "cguest.h"

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
