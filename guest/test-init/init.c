/*
 * sm-runc boot-time probe: a throwaway /init for a test initramfs.
 *
 * Mounts proc (and sysfs), writes "SMRUNC-INIT uptime: <contents of
 * /proc/uptime>" to /dev/console, then calls reboot(RB_AUTOBOOT); with the
 * kernel argument reboot=t the guest triple-faults, which ends the VM
 * (qemu -no-reboot exits; a KVM VMM sees KVM_EXIT_SHUTDOWN).
 *
 * Words on the kernel command line that the kernel does not know are passed
 * to init as arguments:
 *   dumplog   also print the whole kernel log buffer (e.g. with
 *             initcall_debug; use log_buf_len=1M if it overflows)
 *   info      also print /proc/interrupts and the current clocksource
 *
 * Build (see run-qemu.sh): gcc -static -Os -o init init.c
 * Every libc call here is a system call, so this also exercises the guest
 * kernel's SYSCALL path (see guest/patches/0001-*).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

static int con = 1;
static char big[1 << 20];

static void put(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(con, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void cat(const char *title, const char *path)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	puts_(title);
	if (fd < 0) {
		puts_(" (cannot open)\n");
		return;
	}
	puts_("\n");
	while ((n = read(fd, big, sizeof(big))) > 0)
		put(big, (size_t)n);
	close(fd);
}

int main(int argc, char **argv)
{
	char buf[128];
	int fd, dump = 0, info = 0;
	ssize_t n;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "dumplog"))
			dump = 1;
		else if (!strcmp(argv[i], "info"))
			info = 1;
	}
	mkdir("/proc", 0555);
	mount("proc", "/proc", "proc", 0, NULL);
	fd = open("/dev/console", O_WRONLY | O_NOCTTY);
	if (fd >= 0)
		con = fd;
	fd = open("/proc/uptime", O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n < 0)
		n = 0;
	buf[n] = 0;
	puts_("SMRUNC-INIT uptime: ");
	puts_(buf);
	if (n == 0 || buf[n - 1] != '\n')
		puts_("\n");

	if (info) {
		mkdir("/sys", 0555);
		mount("sysfs", "/sys", "sysfs", 0, NULL);
		cat("SMRUNC-INFO /proc/interrupts:", "/proc/interrupts");
		cat("SMRUNC-INFO clocksource:",
		    "/sys/devices/system/clocksource/clocksource0/current_clocksource");
		cat("SMRUNC-INFO /proc/cmdline:", "/proc/cmdline");
	}
	if (dump) {
		int len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, big, sizeof(big));
		puts_("SMRUNC-DMESG-BEGIN\n");
		if (len > 0)
			put(big, (size_t)len);
		puts_("SMRUNC-DMESG-END\n");
	}
	sync();
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}
