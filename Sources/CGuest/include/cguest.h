// CGuest: the few guest-side libc calls Swift's Glibc module does not import.
#ifndef CGUEST_H
#define CGUEST_H
#include <sys/reboot.h>
#include <unistd.h>

/// reboot(2) with RB_AUTOBOOT: with the kernel's `reboot=t` the VM ends as a triple fault.
static inline int cguest_restart(void) { return reboot(RB_AUTOBOOT); }
#endif
