import Testing
import Foundation
import CSeccomp
@testable import VMM

/// The VMM's seccomp lists: they compile, name real syscalls, stay narrow, and a
/// thread that leaves its list takes the whole process down with SIGSYS.
@Suite struct SeccompPolicyTests {
    @Test(arguments: [("process", SeccompPolicy.process), ("vCPU", SeccompPolicy.vcpu), ("event loop", SeccompPolicy.eventLoop),
                      ("network", SeccompPolicy.network)])
    func everyRuleNamesARealSyscallAndSaysWhy(_ list: (String, [SyscallRule])) throws {
        for rule in list.1 {
            #expect(seccomp_syscall_resolve_name(rule.name) >= 0, "\(list.0): \(rule.name)")
            #expect(!rule.why.isEmpty, "\(list.0): \(rule.name)")
        }
        #expect(Set(list.1.map(\.name)).count == list.1.count, "\(list.0): a syscall listed twice")
    }

    /// A thread's filter stacks on the process's: a narrow list that named a syscall
    /// the process list lacks, or allowed an argument value it does not, would say
    /// more than the thread can do.
    @Test(arguments: [("vCPU", SeccompPolicy.vcpu), ("event loop", SeccompPolicy.eventLoop), ("network", SeccompPolicy.network)])
    func aNarrowListAllowsNothingTheProcessListDoesNot(_ list: (String, [SyscallRule])) throws {
        let process = Dictionary(uniqueKeysWithValues: SeccompPolicy.process.map { ($0.name, $0) })
        for rule in list.1 {
            let wide = try #require(process[rule.name], "\(list.0): \(rule.name) is not in the process list")
            guard let limit = wide.argument else { continue }
            let narrow = try #require(rule.argument, "\(list.0): \(rule.name) allows any argument, the process list only some")
            #expect(narrow.index == limit.index, "\(list.0): \(rule.name)")
            #expect(Set(narrow.values).isSubset(of: Set(limit.values)), "\(list.0): \(rule.name)")
        }
    }

    @Test func theProcessListCannotStartProgramsOrChangeTheHost() {
        let process = Set(SeccompPolicy.process.map(\.name))
        // Nothing that could start another program or change the host's mounts.
        for forbidden in ["execve", "execveat", "mount", "umount2", "ptrace", "setns", "unshare", "init_module", "kexec_load"] {
            #expect(!process.contains(forbidden), "\(forbidden)")
        }
        #expect(SeccompPolicy.vcpu.count < 25)
    }

    /// The event loop serves devices: it makes no threads, sockets to listen on,
    /// filters or signal handlers, signals no one, and its only ioctl reads the
    /// terminal size.
    @Test func theEventLoopListLeavesOutThreadSignalAndServerCalls() throws {
        let names = Set(SeccompPolicy.eventLoop.map(\.name))
        for forbidden in ["clone", "clone3", "bind", "listen", "accept", "accept4", "seccomp", "prctl", "rt_sigaction",
                          "tgkill", "kill", "exit_group", "rename", "unlink", "mkdir", "rmdir"] {
            #expect(!names.contains(forbidden), "\(forbidden)")
        }
        let ioctl = try #require(SeccompPolicy.eventLoop.first { $0.name == "ioctl" }?.argument)
        #expect(ioctl.index == 1 && ioctl.values == [UInt64(TIOCGWINSZ)])
    }

    /// The network thread moves frames between guest memory and a tap opened before
    /// confinement: no socket of any kind, no ioctl, no thread, no signal to anyone.
    @Test func theNetworkListMakesNoSocketsAndNoIoctls() {
        let names = Set(SeccompPolicy.network.map(\.name))
        for forbidden in ["socket", "socketpair", "connect", "bind", "sendto", "sendmsg", "recvfrom", "recvmsg", "ioctl",
                          "clone", "clone3", "setns", "unshare", "tgkill", "kill", "execve", "prctl", "seccomp"] {
            #expect(!names.contains(forbidden), "\(forbidden)")
        }
        #expect(SeccompPolicy.network.count < 25)
    }

    /// A vCPU-kind thread making a syscall the process allows but its own list does
    /// not (getuid): the whole process dies by SIGSYS, not just the thread.
    @Test func aVCPUThreadOutsideItsListKillsTheWholeProcess() async {
        await #expect(processExitsWith: .signal(SIGSYS)) {
            try SeccompFilter.install(SeccompPolicy.process, allThreads: true)
            let thread = OSThread(name: "sm-vcpu-test") {
                // Failing to install exits 3 (exit_group is still allowed then).
                do { try SeccompFilter.install(SeccompPolicy.vcpu) } catch { _exit(3) }
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
                // Failing to install exits 3 (exit_group is still allowed then), so
                // success means the vCPU list was on this thread while it ran.
                do { try SeccompFilter.install(SeccompPolicy.vcpu) } catch { _exit(3) }
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
    // MARK: - argument filters

    /// Threads still start under the process list: clone3 fails with ENOSYS and
    /// glibc's pthread_create falls back to clone with exactly the thread flags.
    @Test func threadsStartUnderTheArgumentFilters() async {
        await #expect(processExitsWith: .success) {
            try SeccompFilter.install(SeccompPolicy.process(pid: getpid()), allThreads: true)
            let thread = OSThread(name: "sm-clone-test") {}
            try thread.start()
            thread.join()
            exit(0)
        }
    }

    /// fork (clone with SIGCHLD and no CLONE_THREAD) ends the whole VMM.
    @Test func aForkKillsTheProcess() async {
        await #expect(processExitsWith: .signal(SIGSYS)) {
            try SeccompFilter.install(SeccompPolicy.process(pid: getpid()), allThreads: true)
            _ = fork()
            exit(0)
        }
    }

    /// kill only on the VMM itself (signal 0 probes without sending).
    @Test func killOfAnotherProcessKillsTheProcess() async {
        await #expect(processExitsWith: .success) {
            try SeccompFilter.install(SeccompPolicy.process(pid: getpid()), allThreads: true)
            guard kill(getpid(), 0) == 0 else { exit(3) }
            exit(0)
        }
        await #expect(processExitsWith: .signal(SIGSYS)) {
            try SeccompFilter.install(SeccompPolicy.process(pid: getpid()), allThreads: true)
            _ = kill(1, 0)
            exit(0)
        }
    }

    /// Sockets of the unix family only.
    @Test func anInternetSocketKillsTheProcess() async {
        await #expect(processExitsWith: .signal(SIGSYS)) {
            try SeccompFilter.install(SeccompPolicy.process(pid: getpid()), allThreads: true)
            _ = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            exit(0)
        }
    }

    @Test func theCloneRulesSayWhatTheyAllow() throws {
        let clone = try #require(SeccompPolicy.process.first { $0.name == "clone" }?.argument)
        #expect(clone.index == 0 && clone.values == [0x3d0f00])
        let clone3 = try #require(SeccompPolicy.process.first { $0.name == "clone3" })
        #expect(clone3.errno == ENOSYS && clone3.argument == nil)
        let kill = try #require(SeccompPolicy.process(pid: 4242).first { $0.name == "kill" }?.argument)
        #expect(kill.index == 0 && kill.values == [4242])
    }
}
