import Foundation

/// A reference VMM process whose console (stdout and stderr on one pipe) the
/// benchmark reads as it comes. Spawned with posix_spawn and reaped with waitpid,
/// not Foundation's `Process`, whose termination watch needs a run-loop socket pair:
/// where that cannot be made ("Could not create wakeup socket pair for CFSocket",
/// seen in the hardware-KVM L1) `waitUntilExit` never returns.
final class ConsoleProcess: @unchecked Sendable {
    let processIdentifier: pid_t
    private let lock = NSLock()
    private var status: Int32?

    private init(_ pid: pid_t) { processIdentifier = pid }

    /// Starts `executable` with stdin from /dev/null and stdout+stderr on one pipe.
    static func launch(_ executable: String, _ arguments: [String]) throws -> (process: ConsoleProcess, output: FileHandle) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        // Our copy of the write end must go, or reading never sees EOF.
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO)
        }
        return (ConsoleProcess(pid), FileHandle(fileDescriptor: fds[0], closeOnDealloc: true))
    }

    /// Reads `output` to EOF, handing each chunk to `onChunk`; keeps at most `limit` bytes.
    static func drain(_ output: FileHandle, limit: Int = 1 << 20, onChunk: (Data) -> Void = { _ in }) -> Data {
        var kept = Data()
        while true {
            let chunk = output.availableData
            if chunk.isEmpty { return kept }
            if kept.count < limit { kept.append(chunk) }
            onChunk(chunk)
        }
    }

    /// Reaps the process if it has ended (`block`: waits for it).
    private func reap(block: Bool) -> Int32? {
        lock.lock(); defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        while true {
            let pid = waitpid(processIdentifier, &raw, block ? 0 : WNOHANG)
            if pid == processIdentifier { status = raw; return raw }
            if pid < 0 && errno == EINTR { continue }
            return nil
        }
    }

    var isRunning: Bool { reap(block: false) == nil }
    func waitUntilExit() { _ = reap(block: true) }
    func terminate() { kill(processIdentifier, SIGTERM) }
    /// The exit code, or the signal that ended it (as Foundation's `Process` reports).
    var terminationStatus: Int32 {
        let raw = reap(block: false) ?? 0
        return raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
    }
    var terminatedBySignal: Bool { (reap(block: false) ?? 0) & 0x7f != 0 }
}
