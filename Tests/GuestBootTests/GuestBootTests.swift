import Testing
import Foundation
import Synchronization
import AgentProtocol
import ReferenceVMM
@testable import VMM

/// Boots the real guest kernel and agent. Each boot costs tens of seconds on the
/// nested, emulating KVM of the build machines, so the suite is serialized and small.
/// Needs /dev/kvm and the artifacts scripts/build.sh makes; missing either FAILS.
extension VMBootTests {
    @Suite struct GuestBootTests {
        /// Generous: a boot takes ~30 s here, a few seconds on hardware KVM.
        static let deadline = 240.0

        struct Artifacts {
            let kernel: String
            let initramfs: [UInt8]
        }

        static func artifacts() throws -> Artifacts {
            let kernel = try GuestArtifacts.kernel()
            let agent = try readWholeFile(try GuestArtifacts.agent(), what: "guest agent")
            return Artifacts(kernel: kernel, initramfs: Initramfs.agentImage(agent: agent).archive())
        }

        final class Console: Sendable {
            let scanner = Mutex(ConsoleLineScanner())
            let bytes = Mutex<[UInt8]>([])
            var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
            var ready: ReadyLine? { scanner.withLock { $0.ready } }
        }

        func configuration(_ artifacts: Artifacts, console: Console, extra: [String] = []) -> MachineConfiguration {
            var configuration = MachineConfiguration(kernelPath: artifacts.kernel, initrd: .bytes(artifacts.initramfs))
            configuration.extraKernelParameters = AgentProtocol.kernelParameters + extra
            configuration.deadlineSeconds = Self.deadline
            configuration.consoleOutput = { bytes in
                console.bytes.withLock { $0 += bytes }
                _ = console.scanner.withLock { $0.feed(bytes) }
            }
            return configuration
        }

        @Test func bootsToTheAgentReadyLineAndEndsCleanly() throws {
            try requireKVM()
            let artifacts = try Self.artifacts()
            let console = Console()
            let report = try Machine(configuration(artifacts, console: console)).run()
            #expect(report.exit == .reset, "console:\n\(console.text)")
            let ready = try #require(console.ready, "no ready line; console:\n\(console.text)")
            #expect(ready.version == AgentProtocol.version)
            #expect(ready.uptimeSeconds > 0)
            #expect(report.hostKind == HostKind.detect())
            // The guest reached user space: its console carried only our lines (quiet).
            #expect(report.exits["mmio", default: 0] > 0)
        }

        @Test func aGuestKernelPanicIsReportedWithItsMessage() throws {
            try requireKVM()
            let artifacts = try Self.artifacts()
            let console = Console()
            // No /init to run and no root device: the kernel panics ("VFS: Unable to mount root fs").
            let report = try Machine(configuration(artifacts, console: console, extra: ["rdinit=/nonexistent"])).run()
            guard case .panic(let line) = report.exit else {
                Issue.record("expected a panic, got \(report.exit); console:\n\(console.text)")
                return
            }
            #expect(line.hasPrefix("Kernel panic - not syncing"))
            #expect(console.ready == nil)
        }

        @Test func theBootDeadlineStopsAGuestThatIsNotDone() throws {
            try requireKVM()
            let artifacts = try Self.artifacts()
            var configuration = configuration(artifacts, console: Console())
            configuration.deadlineSeconds = 3
            let started = Date()
            let report = try Machine(configuration).run()
            #expect(report.exit == .deadlineExceeded(seconds: 3))
            #expect(Date().timeIntervalSince(started) < 30)
        }

        /// The same kernel (with its nested-KVM SYSCALL patch) and agent under QEMU's
        /// software CPU, where SYSCALL works natively: the patch must be harmless there.
        @Test func theSamePatchedKernelBootsUnderASoftwareCPU() throws {
            let artifacts = try Self.artifacts()
            let initrd = FileManager.default.temporaryDirectory.appendingPathComponent("sm-runc-test-\(getpid()).cpio")
            try Data(artifacts.initramfs).write(to: initrd)
            defer { try? FileManager.default.removeItem(at: initrd) }
            var qemu = QEMUMicrovm(kernel: artifacts.kernel, initrd: initrd.path,
                                   kernelParameters: MachineConfiguration.baseKernelParameters + AgentProtocol.kernelParameters)
            qemu.accelerator = .tcg
            let result = try qemu.run(deadline: 600)
            #expect(result.ready != nil, "no ready line under TCG; console:\n\(result.console.suffix(3000))")
            #expect(!result.timedOut)
        }
    }
}
