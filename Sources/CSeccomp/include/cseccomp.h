// CSeccomp: bridges to Debian's libseccomp and libcap for the VMM's confinement.
// Only non-variadic entry points are used from Swift (seccomp_rule_add_array,
// cap_set_proc...). Syscall numbers are resolved by name with seccomp_syscall_resolve_name.
#ifndef CSECCOMP_H
#define CSECCOMP_H
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <linux/seccomp.h>

/// SECCOMP_RET_KILL_PROCESS as libseccomp spells it (the whole VMM dies, never one thread).
static const uint32_t CSECCOMP_ACT_KILL_PROCESS = SCMP_ACT_KILL_PROCESS;
static const uint32_t CSECCOMP_ACT_ALLOW = SCMP_ACT_ALLOW;
static inline uint32_t cseccomp_act_errno(uint16_t err) { return SCMP_ACT_ERRNO(err); }

/// prctl(2) is variadic; these are the two calls confinement needs.
static inline int cseccomp_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
static inline int cseccomp_get_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); }
static inline int cseccomp_capbset_drop(int cap) { return prctl(PR_CAPBSET_DROP, cap, 0, 0, 0); }
static inline int cseccomp_clear_ambient(void) { return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); }

/// The actions an OCI profile names, as libseccomp encodes them.
static const uint32_t CSECCOMP_ACT_KILL_THREAD = SCMP_ACT_KILL_THREAD;
static const uint32_t CSECCOMP_ACT_TRAP = SCMP_ACT_TRAP;
static const uint32_t CSECCOMP_ACT_LOG = SCMP_ACT_LOG;
static inline uint32_t cseccomp_act_trace(uint16_t message) { return SCMP_ACT_TRACE(message); }
static const uint32_t CSECCOMP_ARCH_X86_64 = SCMP_ARCH_X86_64;
static const uint32_t CSECCOMP_ARCH_X86 = SCMP_ARCH_X86;
static const uint32_t CSECCOMP_ARCH_X32 = SCMP_ARCH_X32;
/// A comparison with an explicit operator (SCMP_CMP_*).
static inline struct scmp_arg_cmp cseccomp_arg(unsigned int arg, int op, uint64_t a, uint64_t b) {
    struct scmp_arg_cmp cmp = {arg, (enum scmp_compare)op, a, b};
    return cmp;
}

/// One argument comparison for seccomp_rule_add_array (SCMP_A1(SCMP_CMP_EQ, value)).
static inline struct scmp_arg_cmp cseccomp_arg_equals(unsigned int arg, uint64_t value) {
    struct scmp_arg_cmp cmp = {arg, SCMP_CMP_EQ, value, 0};
    return cmp;
}
/// Masked comparison: (argument & mask) == value.
static inline struct scmp_arg_cmp cseccomp_arg_masked_equals(unsigned int arg, uint64_t mask, uint64_t value) {
    struct scmp_arg_cmp cmp = {arg, SCMP_CMP_MASKED_EQ, mask, value};
    return cmp;
}
/// seccomp_attr_set(SCMP_FLTATR_CTL_TSYNC, 1): the filter is installed on every thread.
static inline int cseccomp_set_tsync(scmp_filter_ctx ctx) { return seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1); }
#endif
