import Testing
import Foundation
import Synchronization
import AgentProtocol
@testable import VMM

/// Snapshots of a booted guest at the agent's quiescent point, restored into fresh
/// machines that continue it instead of booting.
extension VMBootTests {
    @Suite struct SnapshotBootTests {
        typealias HostEnd = AgentChannelGuestTests.HostEnd

        static let identity = SnapshotIdentity(vmmVersion: "sm-runc-test", kernel: SHA256.hash(Array("kernel".utf8)),
                                               agent: SHA256.hash(Array("agent".utf8)))

        /// One directory per test process: the snapshot file, empty share directories
        /// for `rootfs` and `binds`, vsock sockets.
        static let directory: String = {
            let path = "/tmp/sm-snap-\(getpid())"
            try? FileManager.default.createDirectory(atPath: path + "/rootfs", withIntermediateDirectories: true)
            try? FileManager.default.createDirectory(atPath: path + "/binds", withIntermediateDirectories: true)
            // The snapshot is 128 MiB of (partly sparse) RAM: gone when the test process ends.
            atexit { try? FileManager.default.removeItem(atPath: "/tmp/sm-snap-\(getpid())") }
            return path
        }()
        static var snapshotPath: String { directory + "/guest.snap" }

        /// The fixed device layout: console, vsock, the agent's root share and the
        /// (not yet mounted) container shares.
        static func configuration(console: GuestBootTests.Console, vsock: String) throws -> MachineConfiguration {
            let root = try #require(GuestArtifacts.guestRoot(), "no guest root: run scripts/build.sh")
            var configuration = MachineConfiguration(kernelPath: try GuestArtifacts.kernel())
            configuration.shares = [
                .init(tag: "sm-guest", hostPath: root, readOnly: true),
                .init(tag: "rootfs", hostPath: directory + "/rootfs", readOnly: false),
                .init(tag: "binds", hostPath: directory + "/binds", readOnly: false),
            ]
            configuration.rootShare = ("sm-guest", "/sm-init")
            configuration.vsockSocketPath = vsock
            configuration.extraKernelParameters = AgentProtocol.kernelParameters
            configuration.deadlineSeconds = GuestBootTests.deadline
            configuration.consoleOutput = { bytes in console.bytes.withLock { $0 += bytes } }
            return configuration
        }

        /// The snapshot, made by the first test that needs it (one boot per run).
        static let made = Mutex<(report: SnapshotReport?, console: String)?>(nil)

        static func snapshot() throws -> (report: SnapshotReport?, console: String) {
            try made.withLock { made in
                if let made { return made }
                let console = GuestBootTests.Console()
                var configuration = try configuration(console: console, vsock: directory + "/boot.sock")
                configuration.snapshotPoint = true
                let report = try Machine(configuration).bootAndSnapshot(to: snapshotPath, identity: identity)
                print("snapshot: booted to the snapshot point in \(formatFixed(report.bootSeconds, digits: 1)) s, " +
                      "captured and wrote \(report.fileBytes >> 20) MiB in \(formatFixed(report.captureSeconds * 1000, digits: 1)) ms; " +
                      "\(report.readyLine)")
                made = (report, console.text)
                return (report, console.text)
            }
        }

        static func uptime(after prefix: String, in text: String) -> Double? {
            guard let range = text.range(of: prefix + " uptime=") else { return nil }
            return Double(text[range.upperBound...].prefix { $0.isNumber || $0 == "." })
        }

        /// A machine restored from the snapshot, its vsock at `<directory>/<name>.sock`
        /// with a host end answering the agent's hello; prints the restore time.
        final class Restored: @unchecked Sendable {
            let machine: Machine
            let console = GuestBootTests.Console()
            let host: HostEnd
            let restoreMilliseconds: Double

            init(_ name: String) throws {
                let vsock = SnapshotBootTests.directory + "/\(name).sock"
                unlink(vsock + "_\(AgentProtocol.vsockPort)")
                host = try HostEnd(path: vsock + "_\(AgentProtocol.vsockPort)")
                host.serve()
                let configuration = try SnapshotBootTests.configuration(console: console, vsock: vsock)
                let began = monotonicSeconds()
                machine = try Machine(configuration, snapshotPath: SnapshotBootTests.snapshotPath, identity: SnapshotBootTests.identity)
                restoreMilliseconds = (monotonicSeconds() - began) * 1000
                print("restore \(name): VMM side \(formatFixed(restoreMilliseconds, digits: 2)) ms (file checks + RAM map + state), " +
                      "of which machine build and state load \(formatFixed((machine.restoreSeconds ?? 0) * 1000, digits: 2)) ms: " +
                      machine.restoreSteps.map { "\($0.step) \(formatFixed($0.seconds * 1000, digits: 2)) ms" }.joined(separator: ", "))
            }
        }

        @Test func aBootedGuestIsSnapshottedAtTheAgentsQuiescentPoint() throws {
            try requireKVM()
            let (report, console) = try Self.snapshot()
            let made = try #require(report)
            #expect(made.readyLine.hasPrefix(SnapshotPoint.readyLine), "console:\n\(console)")
            #expect((Self.uptime(after: SnapshotPoint.readyLine, in: console) ?? 0) > 0, "console:\n\(console)")
            #expect(!console.contains("agent channel"), "the agent must not dial the host before the snapshot; console:\n\(console)")
            #expect(made.fileBytes > 128 << 20)
            let snapshot = try Snapshot.load(Self.snapshotPath, expecting: Self.identity)
            #expect(snapshot.header.formatVersion == 2)
            #expect(snapshot.devices.devices.map(\.name) ==
                    ["virtio-console", "virtio-vsock", "virtio-fs sm-guest", "virtio-fs rootfs", "virtio-fs binds", "virtio-balloon"])
            // Every device was brought up by its driver (DRIVER_OK).
            for device in snapshot.devices.devices { #expect(device.transport.status & 4 != 0, "\(device.name)") }
        }

        @Test func aRestoredGuestContinuesWithoutBootingAndItsAgentComesUp() throws {
            try requireKVM()
            let (_, bootConsole) = try Self.snapshot()
            let snapshotUptime = try #require(Self.uptime(after: SnapshotPoint.readyLine, in: bootConsole))
            let restored = try Restored("restore-one")
            let began = monotonicSeconds()
            let report = try restored.machine.run()
            let console = restored.console.text
            #expect(report.exit == .reset, "console:\n\(console)")
            #expect(restored.host.failure.withLock { $0 } == nil)
            #expect(restored.host.greeted.withLock { $0 }, "console:\n\(console)")
            #expect(console.contains("sm-init: agent channel up (protocol v1)"), "console:\n\(console)")
            // Not booted: no boot ready line, and the uptime carries on from the snapshot's.
            #expect(!console.contains(ReadyLine.prefix), "console:\n\(console)")
            let resumed = try #require(Self.uptime(after: SnapshotPoint.resumedLine, in: console), "console:\n\(console)")
            #expect(resumed >= snapshotUptime, "resumed at uptime \(resumed), snapshot at \(snapshotUptime)")
            #expect(resumed < snapshotUptime + 60, "resumed at uptime \(resumed), snapshot at \(snapshotUptime)")
            #expect(!console.contains("malformed wake-up") && !console.contains("RNDADDENTROPY") && !console.contains("clock_settime"),
                    "console:\n\(console)")
            print("restored guest: uptime \(snapshotUptime) s at the snapshot, \(resumed) s when the agent resumed; " +
                  "run to the end of the agent channel exchange \(formatFixed(monotonicSeconds() - began, digits: 2)) s")
        }

        @Test func twoGuestsRestoredFromOneFileRunIndependently() throws {
            try requireKVM()
            _ = try Self.snapshot()
            let before = try Data(contentsOf: URL(fileURLWithPath: Self.snapshotPath))
            let first = try Restored("restore-a")
            let second = try Restored("restore-b")
            // Both run at once, each in its own VMM state over the same file mapping.
            let secondReport = Mutex<MachineReport?>(nil)
            let secondError = Mutex<String?>(nil)
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                do { let r = try second.machine.run(); secondReport.withLock { $0 = r } } catch { secondError.withLock { $0 = "\(error)" } }
                done.signal()
            }
            let firstReport = try first.machine.run()
            done.wait()
            #expect(secondError.withLock { $0 } == nil)
            for (restored, report) in [(first, firstReport), (second, secondReport.withLock { $0 })] {
                #expect(report?.exit == .reset, "console:\n\(restored.console.text)")
                #expect(restored.host.greeted.withLock { $0 }, "console:\n\(restored.console.text)")
                #expect(restored.console.text.contains(SnapshotPoint.resumedLine), "console:\n\(restored.console.text)")
            }
            // The guests wrote to their RAM (MAP_PRIVATE): the file is as it was.
            let after = try Data(contentsOf: URL(fileURLWithPath: Self.snapshotPath))
            #expect(before == after, "a restored guest's writes reached the snapshot file")
        }

        @Test func aCorruptedOrMismatchedSnapshotIsRefused() throws {
            try requireKVM()
            _ = try Self.snapshot()
            let corrupt = Self.directory + "/corrupt.snap"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: Self.snapshotPath))
            bytes[300] ^= 0x5a                      // inside the section table / state
            try bytes.write(to: URL(fileURLWithPath: corrupt))
            let console = GuestBootTests.Console()
            let configuration = try Self.configuration(console: console, vsock: Self.directory + "/refused.sock")
            #expect {
                _ = try Machine(configuration, snapshotPath: corrupt, identity: Self.identity)
            } throws: { error in
                guard case SnapshotError.checksumMismatch = error else { return false }
                return "\(error)".contains("corrupted")
            }
            // Another agent.
            var other = Self.identity
            other.agent = SHA256.hash(Array("another agent".utf8))
            #expect {
                _ = try Machine(configuration, snapshotPath: Self.snapshotPath, identity: other)
            } throws: { error in
                if case SnapshotError.agentMismatch = error { return true } else { return false }
            }
            // Another device layout (no `binds` share).
            var fewer = configuration
            fewer.shares.removeLast()
            #expect {
                _ = try Machine(fewer, snapshotPath: Self.snapshotPath, identity: Self.identity)
            } throws: { error in
                "\(error)".contains("virtio devices")
            }
            // Another RAM size.
            var bigger = configuration
            bigger.memoryMiB = 256
            #expect(throws: SnapshotError.self) {
                _ = try Machine(bigger, snapshotPath: Self.snapshotPath, identity: Self.identity)
            }
        }
    }
}
