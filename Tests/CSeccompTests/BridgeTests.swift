import Testing
import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// The libseccomp / libcap bridge links and answers (confinement itself is issue 5).
@Suite struct BridgeTests {
    @Test func libseccompResolvesSyscallNames() throws {
        let version = try #require(seccomp_version())
        #expect(version.pointee.major == 2)
        #expect(seccomp_syscall_resolve_name("ioctl") == 16)
        #expect(seccomp_syscall_resolve_name("no_such_syscall") < 0)
    }

    @Test func aFilterCanBeBuiltAndExportedWithoutLoadingIt() throws {
        let filter = try #require(seccomp_init(CSECCOMP_ACT_KILL_PROCESS))
        defer { seccomp_release(filter) }
        #expect(seccomp_rule_add_array(filter, CSECCOMP_ACT_ALLOW, seccomp_syscall_resolve_name("read"), 0, nil) == 0)
        #expect(seccomp_rule_add_array(filter, cseccomp_act_errno(1), seccomp_syscall_resolve_name("mkdir"), 0, nil) == 0)
        // Exporting BPF to /dev/null proves the filter compiles; nothing is installed here.
        let fd = open("/dev/null", O_WRONLY)
        defer { close(fd) }
        #expect(seccomp_export_bpf(filter, fd) == 0)
    }

    @Test func libcapReadsThisProcessesCapabilities() throws {
        let caps = try #require(cap_get_proc())
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        let text = try #require(cap_to_text(caps, nil))
        defer { cap_free(UnsafeMutableRawPointer(text)) }
        #expect(!String(cString: text).isEmpty)
    }
}
