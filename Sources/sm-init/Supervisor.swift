import AgentProtocol
import OCIBundle
import CGuest
import CPosix
#if canImport(Glibc)
import Glibc
#endif

/// Runs the container's processes once it is started: process 1 (process.args) and
/// any `exec`'d ones, each relayed over the one channel by its id. Input, closeStdin,
/// signals and window sizes arrive for an id; output leaves tagged with it; each
/// process's end is reported once it has exited and its output is drained. When
/// process 1 ends, the others are killed (as the end of a pid namespace's init kills
/// the rest), and the container ends.
final class Supervisor {
    struct Process {
        var launched: Container.Launched
        var stdin: Int32?
        var outputs: [(Int32, Frame.Stream)]
        var status: Int32?
        /// When it was reaped: output still open 200 ms later (held by a child that
        /// outlived it) is closed then.
        var reapedAt: Int64?
    }

    let channel: Channel
    let seccomp: [UInt8]?
    private var processes: [UInt32: Process] = [:]
    private var buffer = [UInt8](repeating: 0, count: Frame.maximumData)
    private var channelOpen = true
    /// At most this many exec'd processes at once (guest input is hostile).
    static let maximumProcesses = 64

    /// Readable when a child changed state (SIGCHLD, blocked and read here); -1 if
    /// the guest kernel refused one, and then the loop wakes every 50 ms to reap.
    private let childSignals: Int32

    init(channel: Channel, seccomp: [UInt8]?) {
        self.channel = channel
        self.seccomp = seccomp
        childSignals = cguest_sigchld_fd()
        if childSignals < 0 { say("sm-init: signalfd(SIGCHLD): \(String(cString: strerror(errno))); reaping every 50 ms") }
    }

    deinit { if childSignals >= 0 { close(childSignals) } }

    /// Starts process 1 and supervises until it ends; returns its wait status.
    func run(_ spec: Spec.Process, executable: String, id: UInt32) throws -> Int32 {
        let launched = try Container.launch(spec, executable: executable, seccomp: seccomp)
        add(id, launched)
        try channel.send(.control(ControlMessage(type: .started, process: id, pid: launched.pid)))
        // Input and closeStdin may have arrived together with `start`.
        try handle(channel.takePending())
        while true {
            try step()
            if let main = processes[id], let status = main.status, main.outputs.isEmpty {
                processes[id] = nil
                main.stdin.map { _ = close($0) }
                try endOthers()
                return status
            }
        }
    }

    private func add(_ id: UInt32, _ launched: Container.Launched) {
        processes[id] = Process(launched: launched, stdin: launched.stdin, outputs: launched.outputs)
    }

    /// How long a reaped process's output may stay open after it (see `Process.reapedAt`).
    static let outputGraceMilliseconds: Int64 = 200

    /// One round: wait for output, channel input or a child's exit, reap, report ends.
    /// Without a timer: an idle container costs the guest no wake-ups (on nested hosts
    /// each one is emulated kernel work), and an exit is seen at once.
    private func step() throws {
        let watched = processes.flatMap { id, process in process.outputs.map { (id, $0.0, $0.1) } }
        var fds = watched.map { pollfd(fd: $0.1, events: Int16(POLLIN), revents: 0) }
        let channelIndex: Int? = channelOpen ? fds.count : nil
        if channelOpen { fds.append(pollfd(fd: channel.fd, events: Int16(POLLIN), revents: 0)) }
        let signalIndex: Int? = childSignals >= 0 ? fds.count : nil
        if childSignals >= 0 { fds.append(pollfd(fd: childSignals, events: Int16(POLLIN), revents: 0)) }
        let n = poll(&fds, nfds_t(fds.count), pollTimeout())
        if n < 0 && errno != EINTR { throw AgentError("poll: \(String(cString: strerror(errno)))") }
        if n > 0 {
            for (i, entry) in fds.enumerated() where entry.revents != 0 {
                if i == signalIndex {
                    drainChildSignals()
                    continue
                }
                if i == channelIndex {
                    guard let frames = try channel.receive() else { channelOpen = false; continue }
                    try handle(frames)
                    continue
                }
                let (id, fd, stream) = watched[i]
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    try channel.send(.data(process: id, stream: stream, bytes: Array(buffer[0..<count])))
                } else if count == 0 || errno != EINTR {
                    closeOutput(id, fd)
                }
            }
        }
        reap()
        try reportEnds()
    }

    /// poll's timeout: none (-1) unless a reaped process still has output open, then
    /// until its grace ends; 50 ms without a signalfd.
    private func pollTimeout() -> Int32 {
        guard childSignals >= 0 else { return 50 }
        let now = Self.milliseconds()
        let deadlines = processes.values.compactMap { process -> Int64? in
            guard let reaped = process.reapedAt, !process.outputs.isEmpty else { return nil }
            return reaped + Self.outputGraceMilliseconds
        }
        guard let first = deadlines.min() else { return -1 }
        return Int32(clamping: max(0, first - now + 1))
    }

    private func drainChildSignals() {
        var info = [UInt8](repeating: 0, count: 128 * 4)     // signalfd_siginfo is 128 bytes
        while info.withUnsafeMutableBytes({ read(childSignals, $0.baseAddress, $0.count) }) > 0 {}
    }

    private func closeOutput(_ id: UInt32, _ fd: Int32) {
        close(fd)
        processes[id]?.outputs.removeAll { $0.0 == fd }
    }

    /// Collects every exited child (exec'd processes, and orphans reparented to us).
    private func reap() {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }
            if let id = processes.first(where: { $0.value.launched.pid == pid })?.key {
                processes[id]?.status = status
                processes[id]?.reapedAt = Self.milliseconds()
            }
        }
    }

    /// exec'd processes that have exited and drained: `exited` to the host.
    private func reportEnds() throws {
        let now = Self.milliseconds()
        for (id, process) in processes {
            guard let status = process.status, let reaped = process.reapedAt else { continue }
            if !process.outputs.isEmpty && now - reaped >= Self.outputGraceMilliseconds {
                for (fd, _) in process.outputs { closeOutput(id, fd) }
            }
            guard id != 1, processes[id]?.outputs.isEmpty == true else { continue }
            processes[id] = nil
            process.stdin.map { _ = close($0) }
            try channel.send(.control(Self.exited(id, status)))
        }
    }

    /// Process 1 ended: the others are killed and reported.
    private func endOthers() throws {
        for (_, process) in processes where process.status == nil { kill(process.launched.pid, SIGKILL) }
        for (id, process) in processes {
            var status = process.status ?? 0
            if process.status == nil { while waitpid(process.launched.pid, &status, 0) < 0 && errno == EINTR {} }
            for (fd, _) in process.outputs { close(fd) }
            process.stdin.map { _ = close($0) }
            try channel.send(.control(Self.exited(id, status)))
        }
        processes = [:]
    }

    static func exited(_ id: UInt32, _ status: Int32) -> ControlMessage {
        cguest_signaled(status) != 0
            ? ControlMessage(type: .exited, process: id, signal: cguest_term_signal(status))
            : ControlMessage(type: .exited, process: id, exitCode: cguest_exit_code(status))
    }

    private func handle(_ frames: [Frame]) throws {
        for frame in frames {
            switch frame {
            case .data(let id, .stdin, let bytes):
                if let fd = processes[id]?.stdin { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            case .control(let message):
                try message.validate()
                guard let id = message.process else { continue }
                switch message.type {
                case .closeStdin:
                    if let fd = processes[id]?.stdin { close(fd); processes[id]?.stdin = nil }
                case .signal:
                    if let process = processes[id], process.status == nil { kill(process.launched.pid, message.signal ?? SIGTERM) }
                case .resize:
                    if let terminal = processes[id]?.launched.terminal, let rows = message.rows, let columns = message.columns {
                        _ = cposix_set_window_size(terminal, rows, columns)
                    }
                case .exec:
                    try exec(id, message.spec)
                default:
                    break
                }
            default:
                break
            }
        }
    }

    /// Starts an exec'd process; `started`, or `error` for that id (the container
    /// goes on either way).
    private func exec(_ id: UInt32, _ spec: Spec.Process?) throws {
        do {
            guard let spec, id > 1, processes[id] == nil else { throw AgentError("exec: invalid or duplicate process id \(id)") }
            guard processes.count < Self.maximumProcesses else { throw AgentError("exec: too many processes") }
            let executable = try Container.checkExecutable(spec)
            let launched = try Container.launch(spec, executable: executable, seccomp: seccomp)
            add(id, launched)
            try channel.send(.control(ControlMessage(type: .started, process: id, pid: launched.pid)))
        } catch let error as AgentError {
            try channel.send(.control(ControlMessage(type: .error, process: id, message: error.description)))
        }
    }

    static func milliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
