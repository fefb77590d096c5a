import Testing
import Foundation
import CKVM
import AgentProtocol
@testable import VMM

/// Guests with two vCPUs: the guest kernel starts vCPU 1 with INIT/SIPI through KVM's
/// in-kernel LAPIC (the MP table lists it), each vCPU runs on its own thread, and a
/// snapshot saves and restores both.
extension VMBootTests {
    @Suite struct MultiVCPUBootTests {
        typealias Snapshots = SnapshotBootTests

        /// Whether vCPU 1 left its reset state (MP state UNINITIALIZED, real mode at the
        /// reset vector) and ran guest kernel code, from the profiler's samples.
        static func ranKernelCode(_ samples: [VCPUSample]) -> Bool {
            samples.contains { $0.mpState != UInt32(KVM_MP_STATE_UNINITIALIZED) && $0.rip >= 0xffff_ffff_8000_0000 }
        }

        @Test func aTwoVCPUGuestBringsUpBothCPUsAndEndsCleanly() throws {
            try requireKVM()
            let artifacts = try GuestBootTests.artifacts()
            let console = GuestBootTests.Console()
            // The bring-up lines are KERN_INFO: a log level above `quiet`'s, and the early
            // UART, since hvc0 registers after SMP bring-up and does not replay the log.
            var configuration = GuestBootTests().configuration(artifacts, console: console, extra: ["loglevel=7"])
            configuration.vcpuCount = 2
            configuration.earlySerial = true
            configuration.profileIntervalMilliseconds = 500
            let report = try Machine(configuration).run()
            let text = console.text
            #expect(report.exit == .reset, "console:\n\(text)")
            #expect(text.contains("smp: Brought up 1 node, 2 CPUs"), "console:\n\(text)")
            #expect(!text.contains("failed to boot"), "console:\n\(text)")
            let ready = try #require(console.ready, "no ready line; console:\n\(text)")
            #expect(ready.version == AgentProtocol.version)
            #expect(report.vcpuExits.count == 2)
            #expect(report.vcpuSamples.count == 2)
            #expect(Self.ranKernelCode(report.vcpuSamples[1]), "vCPU 1 samples: \(report.vcpuSamples[1].prefix(20))")
            print("2 vCPUs: ready at guest uptime \(ready.uptimeSeconds) s, wall \(formatFixed(report.wallSeconds, digits: 1)) s; " +
                  "exits " + report.vcpuExits.enumerated().map { "vCPU \($0.offset): \($0.element.sorted { $0.key < $1.key })" }.joined(separator: "; "))
        }

        @Test func aTwoVCPUGuestIsPausedAndResumedAndItsDeadlineStopsBothVCPUs() throws {
            try requireKVM()
            let artifacts = try GuestBootTests.artifacts()
            let console = GuestBootTests.Console()
            var configuration = GuestBootTests().configuration(artifacts, console: console)
            configuration.vcpuCount = 2
            let machine = try Machine(configuration)
            let running = try machine.launch()
            Thread.sleep(forTimeInterval: 8)      // vCPU 1 is up after ~5 s of boot here
            #expect(machine.pause(), "both vCPU threads park")
            Thread.sleep(forTimeInterval: 1)
            #expect(running.exit == nil)
            machine.resume()
            #expect(running.finished.wait(timeout: .now() + GuestBootTests.deadline) == .success)
            let report = machine.finish(running)
            #expect(report.exit == .reset, "console:\n\(console.text)")
            #expect(console.ready != nil, "console:\n\(console.text)")
            for (index, exits) in report.vcpuExits.enumerated() {
                #expect(exits["interrupted", default: 0] >= 1, "vCPU \(index) was kicked for the pause: \(exits)")
            }

            // A deadline (or any stop) ends every vCPU thread, whatever each is doing.
            var short = GuestBootTests().configuration(artifacts, console: GuestBootTests.Console())
            short.vcpuCount = 2
            short.deadlineSeconds = 3
            let began = monotonicSeconds()
            let stopped = try Machine(short).run()
            #expect(stopped.exit == .deadlineExceeded(seconds: 3))
            #expect(monotonicSeconds() - began < 10)
        }

        @Test func aTwoVCPUGuestIsSnapshottedAndRestoredWithBothVCPUsOnOneClock() throws {
            try requireKVM()
            let path = Snapshots.directory + "/smp.snap"
            let bootConsole = GuestBootTests.Console()
            var configuration = try Snapshots.configuration(console: bootConsole, vsock: Snapshots.directory + "/smp-boot.sock")
            configuration.vcpuCount = 2
            configuration.snapshotPoint = true
            let made = try Machine(configuration).bootAndSnapshot(to: path, identity: Snapshots.identity)
            let snapshotUptime = try #require(Snapshots.uptime(after: SnapshotPoint.readyLine, in: bootConsole.text),
                                              "console:\n\(bootConsole.text)")

            let snapshot = try Snapshot.load(path, expecting: Snapshots.identity, vcpuCount: 2)
            #expect(snapshot.vcpus.count == 2)
            // vCPU 1 was up (running or halted in the idle loop), not waiting for a SIPI.
            #expect(snapshot.vcpus[1].mpState.mp_state != UInt32(KVM_MP_STATE_UNINITIALIZED))
            #expect(snapshot.vcpus[1].regs.rip >= 0xffff_ffff_8000_0000)
            // Captured one after the other while paused: their TSCs are within a second.
            let tsc0 = try #require(snapshot.vcpus[0].tsc), tsc1 = try #require(snapshot.vcpus[1].tsc)
            let khz = UInt64(max(snapshot.vcpus[0].tscKHz, 1))
            #expect((tsc0 > tsc1 ? tsc0 - tsc1 : tsc1 - tsc0) < khz * 1000, "TSCs \(tsc0) and \(tsc1) at \(khz) kHz")

            let vsock = Snapshots.directory + "/smp-restore.sock"
            unlink(vsock + "_\(AgentProtocol.vsockPort)")
            let host = try AgentChannelGuestTests.HostEnd(path: vsock + "_\(AgentProtocol.vsockPort)")
            host.serve()
            let console = GuestBootTests.Console()
            var restoring = try Snapshots.configuration(console: console, vsock: vsock)
            restoring.vcpuCount = 2
            let machine = try Machine(restoring, snapshotPath: path, identity: Snapshots.identity)
            let report = try machine.run()
            let text = console.text
            #expect(report.exit == .reset, "console:\n\(text)")
            #expect(host.failure.withLock { $0 } == nil)
            #expect(host.greeted.withLock { $0 }, "console:\n\(text)")
            let resumed = try #require(Snapshots.uptime(after: SnapshotPoint.resumedLine, in: text), "console:\n\(text)")
            #expect(resumed >= snapshotUptime && resumed < snapshotUptime + 60, "resumed at \(resumed), snapshot at \(snapshotUptime)")
            // One clock: no TSC or clocksource complaint, no stall or lockup report.
            for complaint in ["TSC", "clocksource", "soft lockup", "stall", "BUG", "WARNING"] {
                #expect(!text.contains(complaint), "console:\n\(text)")
            }
            // A restore with another vCPU count is refused.
            var one = restoring
            one.vcpuCount = 1
            #expect(throws: SnapshotError.self) { _ = try Machine(one, snapshotPath: path, identity: Snapshots.identity) }
            print("2-vCPU snapshot: boot \(formatFixed(made.bootSeconds, digits: 1)) s, capture \(formatFixed(made.captureSeconds * 1000, digits: 1)) ms; " +
                  "restore \(formatFixed((machine.restoreSeconds ?? 0) * 1000, digits: 2)) ms; uptime \(snapshotUptime) -> \(resumed) s")
        }
    }
}
