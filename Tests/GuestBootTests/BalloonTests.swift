import Testing
import Foundation
import CPosix
import VMM

/// Free page reporting (issue 8): memory a container allocates and frees in the guest
/// returns to the host. The guest kernel reports free 2 MiB blocks on the
/// virtio-balloon's reporting queue about 2 s after they are freed, and the VMM
/// releases the host pages behind them, so the VMM's resident guest RAM falls back.
extension VMBootTests {
    @Suite struct BalloonTests {
        typealias Lifecycle = LifecycleTests
        typealias Run = RunCommandTests

        /// Resident KiB of the guest RAM mapping in /proc/PID/smaps: the snapshot file's
        /// mapping (a restored guest) or the anonymous mapping of the guest's size (a boot).
        static func guestRAMResidentKiB(pid: pid_t, guestMiB: Int) -> Int? {
            guard let use = try? MemoryUse.of(pid, guestRAMMiB: guestMiB), use.foundGuestRAM else { return nil }
            return use.guestRAMRss
        }

        @Test func memoryFreedInTheGuestReturnsToTheHost() throws {
            try requireKVM()
            #expect(cposix_set_child_subreaper() == 0)
            // The phases leave marks in the container's root (a host directory) for the test to see.
            let script = "touch /tmp/idle; sleep 6; touch /tmp/allocating; dd if=/dev/zero of=/dev/null bs=40M count=1; " +
                "touch /tmp/freed; sleep 10"
            let bundle = try Run.makeBundle(args: ["sh", "-c", script], applets: ["dd", "sleep", "touch"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let guestMiB = 128   // GuestSize.defaultMemoryMiB
            let root = bundle.appendingPathComponent("state")
            let pidFile = bundle.appendingPathComponent("pid")
            let log = bundle.appendingPathComponent("log")
            let tmp = bundle.appendingPathComponent("rootfs/tmp")
            func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: tmp.appendingPathComponent(name).path) }
            let create = try Lifecycle.smRunc(["--debug", "--log", log.path, "create", "-b", bundle.path, "--pid-file", pidFile.path, "balloon"],
                                              root: root)
            #expect(create.status == 0, "\(create.stderr)")
            let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
            #expect(try Lifecycle.smRunc(["start", "balloon"], root: root).status == 0)
            func logged() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

            // Idle: the guest sleeps; by now its boot-time free memory has been reported.
            let began = Date()
            while !exists("idle"), kill(pid, 0) == 0, Date().timeIntervalSince(began) < 180 { usleep(100_000) }
            try #require(exists("idle"), "the container never started; log:\n\(logged().suffix(3000))")
            usleep(4_000_000)
            let before = try #require(Self.guestRAMResidentKiB(pid: pid, guestMiB: guestMiB), "no guest RAM mapping in smaps")

            // dd's 40 MiB buffer is touched, then freed at its exit; sample until the VMM ends.
            var peak = before
            var afterFree: [Int] = []
            while kill(pid, 0) == 0, Date().timeIntervalSince(began) < 300 {
                if let kib = Self.guestRAMResidentKiB(pid: pid, guestMiB: guestMiB) {
                    if exists("freed") { afterFree.append(kib) }
                    peak = max(peak, kib)
                }
                usleep(250_000)
            }
            let status = try #require(Lifecycle.reap(pid))
            let text = logged()
            #expect(status == 0, "VMM wait status \(status); log:\n\(text.suffix(3000))")
            #expect(exists("freed"), "dd did not finish; log:\n\(text.suffix(3000))")
            let after = try #require(afterFree.last, "no sample after the free; log:\n\(text.suffix(3000))")
            let lowest = afterFree.min() ?? after
            print("guest RAM resident (KiB): before \(before), peak \(peak), after the free \(after) (lowest \(lowest)); " +
                  "balloon: " + (text.split(separator: "\n").last { $0.contains("virtio-balloon: released") }.map(String.init) ?? "no report logged"))
            #expect(peak - before >= 30 << 10, "dd's 40 MiB did not show: before \(before) KiB, peak \(peak) KiB")
            #expect(after <= peak - (25 << 10), "freed memory stayed resident: peak \(peak) KiB, after \(after) KiB; log:\n\(text.suffix(3000))")
            #expect(text.contains("virtio-balloon: released"), "log:\n\(text.suffix(3000))")
            #expect(!text.contains("virtio-balloon: refused") && !text.contains("device stopped"), "log:\n\(text.suffix(3000))")
            #expect(try Lifecycle.smRunc(["delete", "balloon"], root: root).status == 0)
        }
    }
}
