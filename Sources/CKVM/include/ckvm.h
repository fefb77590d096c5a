// CKVM: the parts of the Linux KVM and virtio UAPI that Swift cannot import by itself.
//
// Swift imports plain structs and integer macros from <linux/kvm.h>, but not the
// function-like `_IO/_IOR/_IOW/_IOWR` request macros, nor the variadic ioctl(2).
// This header turns each request we use into a constant and offers two
// non-variadic ioctl entry points. Nothing here holds state.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <sys/ioctl.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <string.h>

/// The signal that kicks a vCPU thread out of KVM_RUN (a real-time signal, so it
/// never collides with what engines send to the VMM process).
static inline int ckvm_kick_signal(void) { return SIGRTMIN + 2; }
static void ckvm_kick_handler(int sig) { (void)sig; }
/// Installs an empty handler without SA_RESTART, so KVM_RUN returns EINTR.
static inline int ckvm_install_kick_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ckvm_kick_handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(ckvm_kick_signal(), &sa, NULL);
}
/// Unblocks the kick signal in the calling thread. A thread inherits its creator's
/// signal mask, and Dispatch worker threads (Swift concurrency, swift-testing) block
/// every signal: a vCPU thread started from one would never see the kick, and a vCPU
/// blocked in KVM_RUN (halted, or an AP waiting for its SIPI) would never return.
static inline int ckvm_unblock_kick_signal(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, ckvm_kick_signal());
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/// pthread_setname_np(3) for the calling thread. Defined in ckvm.c: it needs
/// _GNU_SOURCE, which must not leak into this header (Swift's Glibc module is
/// built without it, and the two views of <sys/select.h> would clash).
int ckvm_set_thread_name(const char *name);

/// File-server calls glibc declares only under _GNU_SOURCE (which must stay out of
/// this header); thin wrappers defined in ckvm.c.
int ckvm_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
int ckvm_fallocate(int fd, int mode, int64_t offset, int64_t length);
ssize_t ckvm_getxattr(const char *path, const char *name, void *value, size_t size);
int ckvm_setxattr(const char *path, const char *name, const void *value, size_t size, int flags);
ssize_t ckvm_listxattr(const char *path, char *list, size_t size);
int ckvm_removexattr(const char *path, const char *name);
ssize_t ckvm_getdents64(int fd, void *buffer, size_t size);
int ckvm_syncfs(int fd);

/// ioctl(2) with an integer argument (or none: pass 0).
static inline int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}

/// ioctl(2) with a pointer argument.
static inline int ckvm_ioctl_pointer(int fd, unsigned long request, void *arg) {
    return ioctl(fd, request, arg);
}

// System ioctls (on /dev/kvm).
static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;

// VM ioctls.
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long CKVM_IRQFD = KVM_IRQFD;
static const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;
static const uint32_t CKVM_IOEVENTFD_FLAG_DATAMATCH = KVM_IOEVENTFD_FLAG_DATAMATCH;
static const unsigned long CKVM_GET_CLOCK = KVM_GET_CLOCK;
static const unsigned long CKVM_SET_CLOCK = KVM_SET_CLOCK;
static const unsigned long CKVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
static const unsigned long CKVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
static const unsigned long CKVM_GET_PIT2 = KVM_GET_PIT2;
static const unsigned long CKVM_SET_PIT2 = KVM_SET_PIT2;

// vCPU ioctls.
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long CKVM_SET_MP_STATE = KVM_SET_MP_STATE;
static const unsigned long CKVM_GET_CPUID2 = KVM_GET_CPUID2;
static const unsigned long CKVM_GET_XSAVE = KVM_GET_XSAVE;
static const unsigned long CKVM_GET_XSAVE2 = KVM_GET_XSAVE2;
static const unsigned long CKVM_SET_XSAVE = KVM_SET_XSAVE;
static const unsigned long CKVM_GET_XCRS = KVM_GET_XCRS;
static const unsigned long CKVM_SET_XCRS = KVM_SET_XCRS;
static const unsigned long CKVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long CKVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
static const unsigned long CKVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
static const unsigned long CKVM_KVMCLOCK_CTRL = KVM_KVMCLOCK_CTRL;

// kvm_run's exit payloads live in an anonymous union; these accessors name them.
static inline struct kvm_run *ckvm_run(void *mapping) { return (struct kvm_run *)mapping; }
static inline uint32_t ckvm_exit_reason(const void *run) { return ((const struct kvm_run *)run)->exit_reason; }
static inline void ckvm_set_immediate_exit(void *run, uint8_t value) {
    ((volatile struct kvm_run *)run)->immediate_exit = value;
}

/// KVM_EXIT_IO: direction, size, port, count and the offset of the data within the mapping.
typedef struct {
    uint8_t direction;
    uint8_t size;
    uint16_t port;
    uint32_t count;
    uint64_t data_offset;
} ckvm_io_exit;
static inline ckvm_io_exit ckvm_exit_io(const void *run) {
    const struct kvm_run *r = (const struct kvm_run *)run;
    ckvm_io_exit e = { r->io.direction, r->io.size, r->io.port, r->io.count, r->io.data_offset };
    return e;
}

/// KVM_EXIT_MMIO: address, up to 8 data bytes, length and direction.
static inline uint64_t ckvm_exit_mmio_address(const void *run) { return ((const struct kvm_run *)run)->mmio.phys_addr; }
static inline uint32_t ckvm_exit_mmio_length(const void *run) { return ((const struct kvm_run *)run)->mmio.len; }
static inline uint8_t ckvm_exit_mmio_is_write(const void *run) { return ((const struct kvm_run *)run)->mmio.is_write; }
static inline uint8_t *ckvm_exit_mmio_data(void *run) { return ((struct kvm_run *)run)->mmio.data; }

/// KVM_EXIT_INTERNAL_ERROR: suberror and up to 16 words of data.
static inline uint32_t ckvm_exit_internal_suberror(const void *run) { return ((const struct kvm_run *)run)->internal.suberror; }
static inline uint32_t ckvm_exit_internal_ndata(const void *run) { return ((const struct kvm_run *)run)->internal.ndata; }
static inline uint64_t ckvm_exit_internal_data(const void *run, uint32_t index) {
    return index < 16 ? ((const struct kvm_run *)run)->internal.data[index] : 0;
}
/// For suberror KVM_INTERNAL_ERROR_EMULATION with the instruction-bytes flag: the bytes.
static inline uint64_t ckvm_exit_emulation_flags(const void *run) { return ((const struct kvm_run *)run)->emulation_failure.flags; }
static inline uint8_t ckvm_exit_emulation_insn_size(const void *run) { return ((const struct kvm_run *)run)->emulation_failure.insn_size; }
static inline uint8_t ckvm_exit_emulation_insn_byte(const void *run, uint32_t index) {
    return index < 15 ? ((const struct kvm_run *)run)->emulation_failure.insn_bytes[index] : 0;
}

/// KVM_EXIT_FAIL_ENTRY: hardware reason.
static inline uint64_t ckvm_exit_fail_entry_reason(const void *run) { return ((const struct kvm_run *)run)->fail_entry.hardware_entry_failure_reason; }
/// KVM_EXIT_SYSTEM_EVENT: type.
static inline uint32_t ckvm_exit_system_event_type(const void *run) { return ((const struct kvm_run *)run)->system_event.type; }

/// struct kvm_cpuid2 and struct kvm_msrs end in flexible arrays; Swift builds them in a
/// raw buffer of this size.
static inline size_t ckvm_cpuid2_size(uint32_t entries) { return sizeof(struct kvm_cpuid2) + entries * sizeof(struct kvm_cpuid_entry2); }
static inline size_t ckvm_msrs_size(uint32_t entries) { return sizeof(struct kvm_msrs) + entries * sizeof(struct kvm_msr_entry); }

/// Full barriers for virtqueue index publication (the guest runs concurrently).
static inline void ckvm_memory_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/// Single-copy atomic loads/stores of ring indices in guest memory.
static inline uint16_t ckvm_load_u16(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE); }
static inline void ckvm_store_u16(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE); }
/// Opens the tap `name` in the network namespace at `netns_path` (setns on the calling
/// thread only, then back): a non-blocking IFF_TAP | IFF_NO_PI | IFF_VNET_HDR descriptor
/// (12-byte headers, checksum and TSO offloads on), or -errno with `*failed_step` 1 own
/// netns, 2 open the netns, 3 setns, 4 /dev/net/tun, 5 TUNSETIFF, 6 setns back,
/// 7 TUNSETVNETHDRSZ, 8 TUNSETOFFLOAD.
int ckvm_open_tap(const char *netns_path, const char *name, int *failed_step);
#endif
