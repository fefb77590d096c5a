import Testing
import Foundation
import CSeccomp
@testable import VMM

/// The VMM's seccomp lists: they compile, name real syscalls, stay narrow, and a
/// thread that leaves its list takes the whole process down with SIGSYS.
@Suite struct SeccompPolicyTests {
    @Test(arguments: [("process", SeccompPolicy.process), ("vCPU", SeccompPolicy.vcpu), ("event loop", SeccompPolicy.eventLoop)])
    func everyRuleNamesARealSyscallAndSaysWhy(_ list: (String, [SyscallRule])) throws {
        for rule in list.1 {
            #expect(seccomp_syscall_resolve_name(rule.name) >= 0, "\(list.0): \(rule.name)")
            #expect(!rule.why.isEmpty, "\(list.0): \(rule.name)")
        }
        #expect(Set(list.1.map(\.name)).count == list.1.count, "\(list.0): a syscall listed twice")
    }

    @Test func theNarrowListsAreSubsetsOfTheProcessList() {
        let process = Set(SeccompPolicy.process.map(\.name))
        #expect(Set(SeccompPolicy.vcpu.map(\.name)).isSubset(of: process))
        #expect(Set(SeccompPolicy.eventLoop.map(\.name)).isSubset(of: process))
        // Nothing that could start another program or change the host's mounts.
        for forbidden in ["execve", "execveat", "mount", "umount2", "ptrace", "setns", "unshare", "init_module", "kexec_load"] {
            #expect(!process.contains(forbidden), "\(forbidden)")
        }
        #expect(SeccompPolicy.vcpu.count < 25)
    }

    /// A vCPU-kind thread making a syscall the process allows but its own list does
    /// not (getuid): the whole process dies by SIGSYS, not just the thread.
    @Test func aVCPUThreadOutsideItsListKillsTheWholeProcess() async {
        await #expect(processExitsWith: .signal(SIGSYS)) {
            try SeccompFilter.install(SeccompPolicy.process, allThreads: true)
            let thread = OSThread(name: "sm-vcpu-test") {
                try? SeccompFilter.install(SeccompPolicy.vcpu)
                _ = getuid()
            }
            try thread.start()
            thread.join()
            // Not reached: the filter ends the process from the vCPU thread.
            exit(0)
        }
    }

    /// The same rules let the thread do what a vCPU thread does.
    @Test func aVCPUThreadWithinItsListRunsOn() async {
        await #expect(processExitsWith: .success) {
            try SeccompFilter.install(SeccompPolicy.process, allThreads: true)
            let thread = OSThread(name: "sm-vcpu-test") {
                try? SeccompFilter.install(SeccompPolicy.vcpu)
                var time = timespec()
                _ = clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
                buffer.deallocate()
            }
            try thread.start()
            thread.join()
            exit(0)
        }
    }
}
