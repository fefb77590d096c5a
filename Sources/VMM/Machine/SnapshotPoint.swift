#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// The quiescent point a booted guest is snapshotted at, agreed with the agent
/// (`Sources/sm-init/SnapshotPoint.swift` mirrors these strings):
///
/// 1. The VMM boots with `sm.snapshot=1` on the kernel command line.
/// 2. The agent, once booted and before it opens any vsock connection, puts its
///    console in raw mode and prints `sm-init: snapshot-ready uptime=<s>`, then
///    blocks reading a line from the console. Nothing is in flight between guest and
///    host then: no vsock connection, no request outstanding but the console's
///    receive buffers, which the driver posted at probe and which wait for input.
/// 3. The VMM sees the line, pauses the vCPU and captures.
/// 4. On restore the VMM writes `sm-wake <64 hex digits of seed> <seconds> <nanoseconds>\n`
///    into the console: the agent credits the seed to the kernel's entropy pool,
///    sets the wall clock, prints `sm-init: resumed uptime=<s>`, and carries on as
///    after a boot (dials the host over vsock).
public enum SnapshotPoint {
    public static let kernelParameter = "sm.snapshot=1"
    public static let readyLine = "sm-init: snapshot-ready"
    public static let resumedLine = "sm-init: resumed"
    public static let wakePrefix = "sm-wake "
    public static let seedBytes = 32

    /// The wake-up line for a restored guest: a fresh seed and the host's wall clock.
    static func wakeUpLine() throws(SystemCallError) -> [UInt8] {
        let seed = try hostRandomBytes(seedBytes)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Array("\(wakePrefix)\(seed.map { hex2($0) }.joined()) \(now.tv_sec) \(now.tv_nsec)\n".utf8)
    }
}

/// Watches guest console output for the snapshot-ready line (across writes that
/// split it) and signals once; keeps that line.
final class SnapshotReadyWatcher: Sendable {
    private let state = Mutex<(partial: [UInt8], line: String?)>(([], nil))
    private let seen = Atomic<Bool>(false)
    private let marker = Array(SnapshotPoint.readyLine.utf8)
    let signal = DispatchSemaphore(value: 0)

    var line: String? { state.withLock { $0.line } }

    func feed(_ bytes: [UInt8]) {
        guard !seen.load(ordering: .relaxed) else { return }
        let found: Bool = state.withLock { state in
            for byte in bytes {
                if byte == 0x0a || byte == 0x0d {
                    if state.partial.starts(with: marker) {
                        state.line = String(decoding: state.partial, as: UTF8.self)
                        state.partial.removeAll()
                        return true
                    }
                    state.partial.removeAll()
                } else if state.partial.count < 256 {
                    state.partial.append(byte)
                }
            }
            return false
        }
        if found, !seen.exchange(true, ordering: .sequentiallyConsistent) { signal.signal() }
    }
}
