#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization
import AgentProtocol

/// The VMM's side of the snapshot point (the protocol and its lines are
/// `AgentProtocol.SnapshotPoint`, shared with the agent).
extension SnapshotPoint {
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
                } else if state.partial.count < SnapshotPoint.maximumLine {
                    state.partial.append(byte)
                }
            }
            return false
        }
        if found, !seen.exchange(true, ordering: .sequentiallyConsistent) { signal.signal() }
    }
}
