import Testing
import Foundation
import OCIBundle
@testable import Runtime

extension RuntimeTests {
    /// `delete` ends a container's VMM that is still alive whatever its recorded
    /// status, before its state goes (a VMM without a VM: a stopped child process).
    @Suite struct DeleteTests {
        /// A state record for `id` under `root` whose VMM is `pid`, recorded `status`.
        /// Errors and warnings only, to stderr.
        static let reporter = Reporter(logPath: nil, format: .text, debug: false)

        static func record(root: String, id: String, pid: pid_t, status: ContainerStatus) throws -> StateDirectory {
            let state = try StateDirectory.create(root: root, id: id)
            let start = try #require(ProcessIdentity.startTime(of: pid))
            try state.save(ContainerRecord(id: id, pid: pid, pidStartTime: start, status: status, bundle: "/nonexistent",
                                           rootfs: "/nonexistent/rootfs", created: Reporter.timestamp(), owner: "root",
                                           exitSignal: status == .stopped ? SIGSTOP : nil))
            return state
        }

        /// /bin/sleep as our child, then stopped with SIGSTOP (as a VMM that re-raised it).
        static func stoppedChild() throws -> Foundation.Process {
            let child = Foundation.Process()
            child.executableURL = URL(fileURLWithPath: "/bin/sleep")
            child.arguments = ["1000"]
            try child.run()
            #expect(kill(child.processIdentifier, SIGSTOP) == 0)
            // Until /proc says it is stopped.
            for _ in 0..<500 {
                if let stat = try? String(contentsOfFile: "/proc/\(child.processIdentifier)/stat", encoding: .utf8),
                   stat.split(separator: ")").last?.dropFirst().first == "T" { break }
                usleep(10_000)
            }
            return child
        }

        @Test(arguments: [ContainerStatus.stopped, .created])
        func deleteKillsAStoppedVMMBeforeRemovingTheState(_ status: ContainerStatus) throws {
            let root = try TemporaryDirectory()
            let child = try Self.stoppedChild()
            let pid = child.processIdentifier
            defer { kill(pid, SIGKILL); child.waitUntilExit() }
            let state = try Self.record(root: root.path, id: "stopped-vmm", pid: pid, status: status)
            try ContainerLookup.delete(root: root.path, id: "stopped-vmm", force: false, reporter: Self.reporter)
            #expect(lstatus(state.path) == nil)
            try #require(ProcessIdentity.startTime(of: pid) == nil, "the VMM \(pid) outlived delete")
            child.waitUntilExit()
            #expect(child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL)
        }

        @Test func deleteWithoutForceStillRefusesARunningContainerAndLeavesItsVMM() throws {
            let root = try TemporaryDirectory()
            let child = try Self.stoppedChild()
            let pid = child.processIdentifier
            defer { kill(pid, SIGKILL); child.waitUntilExit() }
            let state = try Self.record(root: root.path, id: "running-vmm", pid: pid, status: .running)
            #expect(throws: RuntimeError.self) {
                try ContainerLookup.delete(root: root.path, id: "running-vmm", force: false, reporter: Self.reporter)
            }
            #expect(ProcessIdentity.startTime(of: pid) != nil)
            #expect(lstatus(state.path) != nil)
        }
    }
}
