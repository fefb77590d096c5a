import Foundation
import AgentProtocol
import OCIBundle

/// The host end of the agent channel for one container. The VMM's vsock maps guest
/// port 1024 to `<socket>_1024`; the agent connects there once the guest is up.
///
/// The session follows the container's life: `create` (sent with our hello as soon as the agent
/// connects) → its hello and `created` → `start()` → `started` → `exited`. stdio is relayed byte for
/// byte: the process's output to our fds 1 and 2, our fd 0 to its stdin once started.
package final class AgentSession: @unchecked Sendable {
    package enum Outcome: Equatable {
        case exited(Int32)
        case signaled(Int32)
        case failed(String)
    }

    package enum Phase: Equatable {
        case booting, created, starting, running
        case ended(Outcome)
    }

    private let listener: Int32
    private let path: String
    private let create: ControlMessage
    private let condition = NSCondition()
    private var phase = Phase.booting
    /// The agent's connection once it said hello.
    private var connection: Int32?
    private let sendLock = NSLock()
    /// exec'd processes by id (2, 3, ...): where their stdio goes and how they ended.
    private var execs: [UInt32: Exec] = [:]
    private var nextExecID: UInt32 = 2
    /// Milestones of the container's start as the host sees them (monotonic seconds):
    /// where the time between the guest running and the first output goes.
    private var milestones: [(name: String, at: Double)] = []
    private var firstOutputSeen = false

    /// One exec'd process: the caller's stdio fds (owned here) and its end.
    package final class Exec: @unchecked Sendable {
        package let id: UInt32
        package let stdin: Int32, stdout: Int32, stderr: Int32
        private let condition = NSCondition()
        package private(set) var pid: Int32?
        package private(set) var outcome: Outcome?

        package init(id: UInt32, fds: [Int32]) {
            self.id = id
            stdin = fds[0]; stdout = fds[1]; stderr = fds[2]
        }

        package func started(_ pid: Int32) { condition.lock(); self.pid = pid; condition.broadcast(); condition.unlock() }
        package func finish(_ outcome: Outcome) {
            condition.lock()
            if self.outcome == nil { self.outcome = outcome }
            condition.broadcast()
            condition.unlock()
        }

        /// Waits until `done` holds or `timeout` seconds pass.
        package func wait(timeout: Double, until done: (Exec) -> Bool) -> Bool {
            let deadline = Date(timeIntervalSinceNow: timeout)
            condition.lock()
            defer { condition.unlock() }
            while !done(self) { if !condition.wait(until: deadline) { return done(self) } }
            return true
        }

        package func closeFDs() { [stdin, stdout, stderr].forEach { _ = close($0) } }
    }

    package var processID: UInt32 { create.process ?? 1 }

    package init(socketPath: String, create: ControlMessage) throws {
        self.path = socketPath
        self.create = create
        listener = try listenUnix(socketPath, backlog: 1)
    }

    deinit {
        close(listener)
        unlink(path)
    }

    /// Notes a milestone, now or at `at` (`ProcessInfo.systemUptime`); the first of each name counts.
    package func mark(_ name: String, at: Double? = nil) {
        let now = at ?? ProcessInfo.processInfo.systemUptime
        condition.lock()
        if !milestones.contains(where: { $0.name == name }) { milestones.append((name, now)) }
        condition.unlock()
    }

    /// `--debug`'s timeline: each milestone after the first, in ms since the one before
    /// (e.g. `guest running, +812.4 ms agent connected, ...`).
    package func timeline() -> String {
        condition.lock()
        let marks = milestones.sorted { $0.at < $1.at }
        condition.unlock()
        guard let first = marks.first else { return "" }
        var previous = first.at
        var parts = [first.name]
        for mark in marks.dropFirst() {
            parts.append("+\(String(format: "%.1f", (mark.at - previous) * 1000)) ms \(mark.name)")
            previous = mark.at
        }
        return parts.joined(separator: ", ") + " (total \(String(format: "%.1f", (previous - first.at) * 1000)) ms)"
    }

    /// Serves on a thread of its own.
    package func serveInBackground() {
        Thread.detachNewThread { [self] in
            let outcome = serve()
            end(outcome)
        }
    }

    /// Ends the session from outside (the guest ended, or the container is being
    /// killed before it started): a waiter sees `.failed(reason)` unless it already ended.
    package func end(_ outcome: Outcome) {
        condition.lock()
        if case .ended = phase {} else { phase = .ended(outcome) }
        let connection = self.connection
        let pending = Array(execs.values)
        execs = [:]
        condition.broadcast()
        condition.unlock()
        for exec in pending { exec.finish(.failed("the container ended")) }
        // Unblocks the serving thread in accept or read.
        shutdown(listener, Int32(SHUT_RDWR))
        if let connection { shutdown(connection, Int32(SHUT_RDWR)) }
    }

    /// Waits until the phase satisfies `done` or `timeout` seconds pass; returns the phase.
    package func wait(timeout: Double, until done: (Phase) -> Bool) -> Phase {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !done(phase) && condition.wait(until: deadline) {}
        return phase
    }

    /// Waits for the agent to report the container created (root and mounts ready).
    package func waitCreated(timeout: Double) throws {
        switch wait(timeout: timeout, until: { $0 != .booting }) {
        case .booting: throw RuntimeError("the guest did not come up within \(Int(timeout)) s")
        case .ended(.failed(let message)): throw RuntimeError(message)
        case .ended(let outcome): throw RuntimeError("the guest ended before the container was created (\(outcome))")
        default: return
        }
    }

    /// Runs the created process; returns once the agent reports it started.
    package func start(timeout: Double) throws {
        condition.lock()
        guard phase == .created, let connection else {
            let phase = self.phase
            condition.unlock()
            throw RuntimeError(phase == .running || phase == .starting ? "container already started" : "container not created (\(phase))")
        }
        phase = .starting
        condition.unlock()
        mark("start")
        try send(.control(ControlMessage(type: .start, process: processID)), to: connection)
        forwardStdin(to: connection)
        switch wait(timeout: timeout, until: { $0 != .starting }) {
        case .running, .ended(.exited), .ended(.signaled): return
        case .ended(.failed(let message)): throw RuntimeError(message)
        default: throw RuntimeError("the agent did not start the process within \(Int(timeout)) s")
        }
    }

    /// The outcome once the session ended, or nil if it has not within `timeout` seconds.
    package func outcome(timeout: Double) -> Outcome? {
        if case .ended(let outcome) = wait(timeout: timeout, until: { if case .ended = $0 { true } else { false } }) {
            return outcome
        }
        return nil
    }

    private func setPhase(_ new: Phase) {
        condition.lock()
        if case .ended = phase {} else { phase = new }
        condition.broadcast()
        condition.unlock()
    }

    private func serve() -> Outcome {
        let connection = accept(listener, nil, nil)
        guard connection >= 0 else { return .failed("the agent did not connect (accept: \(String(cString: strerror(errno))))") }
        mark("agent connected")
        condition.lock()
        self.connection = connection
        condition.unlock()
        defer {
            condition.lock()
            self.connection = nil
            condition.unlock()
            close(connection)
        }
        var reader = FrameReader()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var helloDone = false
        do {
            // Hello and create in one go: the agent reads them in order (its channel
            // keeps frames it has not asked for yet), and answers with its hello and
            // `created` (or `error`) in one write: no round trip through the guest's
            // vsock before the container's set-up starts.
            try send(.control(.hello()), to: connection)
            try send(.control(create), to: connection)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return .failed("the agent closed its channel before the process exited") }
                for frame in try reader.feed(buffer[0..<n]) {
                    switch frame {
                    case .data(let id, let stream, let bytes):
                        if id == processID {
                            if !firstOutputSeen { firstOutputSeen = true; mark("first output") }
                            writeAll(stream == .stderr ? 2 : 1, bytes)
                        } else if let exec = exec(id) {
                            writeAll(stream == .stderr ? exec.stderr : exec.stdout, bytes)
                        }
                    case .control(let message):
                        try message.validate()
                        switch message.type {
                        case .hello where !helloDone:
                            helloDone = true
                            mark("hello")
                        case .created where !helloDone, .error where !helloDone:
                            // The agent's hello (its protocol version, checked by
                            // `validate`) comes in the same write as its answer.
                            return .failed("the agent answered create without its hello (an agent of another protocol?)")
                        case .created:
                            mark("created (root and mounts ready)")
                            setPhase(.created)
                        case .started where message.process != processID:
                            if let id = message.process, let pid = message.pid { exec(id)?.started(pid) }
                        case .exited where message.process != processID:
                            if let id = message.process, let exec = removeExec(id) {
                                exec.finish(message.signal.map { .signaled($0) } ?? .exited(message.exitCode ?? 255))
                            }
                        case .error where message.process != nil && message.process != processID:
                            if let id = message.process, let exec = removeExec(id) { exec.finish(.failed(message.message ?? "exec failed")) }
                        case .started:
                            mark("started (process exec'd)")
                            setPhase(.running)
                        case .exited:
                            mark("exited")
                            if let signal = message.signal { return .signaled(signal) }
                            return .exited(message.exitCode ?? 255)
                        case .error:
                            return .failed(message.message ?? "agent error")
                        default:
                            return .failed("unexpected \(message.type) from the agent")
                        }
                    }
                }
            }
        } catch {
            return .failed("agent channel: \(error)")
        }
    }

    /// Sends `signal` to the container process; false unless it is running.
    @discardableResult
    package func signal(_ signal: Int32) -> Bool {
        condition.lock()
        let connection = phase == .running ? self.connection : nil
        condition.unlock()
        guard let connection else { return false }
        let message = ControlMessage(type: .signal, process: processID, signal: signal)
        return (try? send(.control(message), to: connection)) != nil
    }

    /// Passes a window size to a process's terminal; false unless the container runs.
    @discardableResult
    package func resize(rows: UInt16, columns: UInt16, process: UInt32? = nil) -> Bool {
        guard let connection = runningConnection() else { return false }
        let message = ControlMessage(type: .resize, process: process ?? processID, rows: rows, columns: columns)
        return (try? send(.control(message), to: connection)) != nil
    }

    private func runningConnection() -> Int32? {
        condition.lock()
        defer { condition.unlock() }
        return phase == .running ? connection : nil
    }

    private func exec(_ id: UInt32) -> Exec? {
        condition.lock()
        defer { condition.unlock() }
        return execs[id]
    }

    private func removeExec(_ id: UInt32) -> Exec? {
        condition.lock()
        defer { condition.unlock() }
        return execs.removeValue(forKey: id)
    }

    /// Starts `spec` in the running container with `fds` (stdin, stdout, stderr) as
    /// its stdio; returns once the agent started it (or throws its error).
    package func exec(_ spec: Spec.Process, fds: [Int32], timeout: Double = 60) throws -> Exec {
        precondition(fds.count == 3)
        condition.lock()
        guard phase == .running, let connection else {
            condition.unlock()
            throw RuntimeError("cannot exec in a container that is not running")
        }
        let id = nextExecID
        nextExecID += 1
        let exec = Exec(id: id, fds: fds)
        execs[id] = exec
        condition.unlock()
        do {
            try send(.control(ControlMessage(type: .exec, process: id, spec: spec)), to: connection)
        } catch {
            _ = removeExec(id)
            throw error
        }
        guard exec.wait(timeout: timeout, until: { $0.pid != nil || $0.outcome != nil }) else {
            _ = removeExec(id)
            throw RuntimeError("exec: the agent did not start the process within \(Int(timeout)) s")
        }
        if exec.pid == nil, case .failed(let message)? = exec.outcome { throw RuntimeError(message) }
        forwardInput(from: exec.stdin, process: id, to: connection)
        return exec
    }

    /// Sends `signal` to an exec'd process.
    @discardableResult
    package func signal(_ signal: Int32, process: UInt32) -> Bool {
        guard let connection = runningConnection() else { return false }
        return (try? send(.control(ControlMessage(type: .signal, process: process, signal: signal)), to: connection)) != nil
    }

    /// Copies our stdin to the process; EOF closes the process's stdin.
    private func forwardStdin(to connection: Int32) {
        forwardInput(from: 0, process: processID, to: connection)
    }

    /// Copies `fd` to process `id`'s stdin; EOF closes it.
    private func forwardInput(from fd: Int32, process id: UInt32, to connection: Int32) {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: Frame.maximumData)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    try? send(.control(ControlMessage(type: .closeStdin, process: id)), to: connection)
                    return
                }
                guard (try? send(.data(process: id, stream: .stdin, bytes: Array(buffer[0..<n])), to: connection)) != nil else { return }
            }
        }
    }

    private func send(_ frame: Frame, to fd: Int32) throws {
        let bytes = try frame.encoded()
        sendLock.lock()
        defer { sendLock.unlock() }
        guard writeAll(fd, bytes) else { throw RuntimeError("agent channel: write: \(String(cString: strerror(errno)))") }
    }
}
