import Foundation
import AgentProtocol
import OCIBundle

/// The host end of the agent channel for one container: accepts the agent's
/// connection (the VMM's vsock maps guest port 1024 to `<socket>_1024`), sends the
/// process to start, relays stdio byte for byte, and collects the exit.
final class AgentSession: @unchecked Sendable {
    enum Outcome: Equatable {
        case exited(Int32)
        case signaled(Int32)
        case failed(String)
    }

    private let listener: Int32
    private let path: String
    private let start: ControlMessage
    private let lock = NSLock()
    private var result: Outcome?
    /// The agent's connection once the process was started (for signals).
    private var connection: Int32?
    private let done = DispatchSemaphore(value: 0)

    init(socketPath: String, start: ControlMessage) throws {
        self.path = socketPath
        self.start = start
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw RuntimeError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw RuntimeError("socket path too long: \(socketPath)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(listener, 1) == 0 else {
            let message = String(cString: strerror(errno))
            close(listener)
            throw RuntimeError("listen `\(socketPath)`: \(message)")
        }
    }

    deinit {
        close(listener)
        unlink(path)
    }

    /// Serves on a thread of its own; `outcome` waits for it.
    func serveInBackground() {
        Thread.detachNewThread { [self] in
            let outcome = serve()
            lock.withLock { result = outcome }
            done.signal()
        }
    }

    /// The outcome once the session ended, or nil if it has not within `timeout` seconds.
    func outcome(timeout: Double) -> Outcome? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return lock.withLock { result }
    }

    private func serve() -> Outcome {
        let connection = accept(listener, nil, nil)
        guard connection >= 0 else { return .failed("accept: \(String(cString: strerror(errno)))") }
        defer {
            lock.withLock { self.connection = nil }
            close(connection)
        }
        var reader = FrameReader()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var helloDone = false
        do {
            try send(.control(.hello()), to: connection)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return .failed("the agent closed its channel before the process exited") }
                for frame in try reader.feed(buffer[0..<n]) {
                    switch frame {
                    case .data(_, let stream, let bytes):
                        writeAll(stream == .stderr ? 2 : 1, bytes)
                    case .control(let message):
                        try message.validate()
                        switch message.type {
                        case .hello where !helloDone:
                            helloDone = true
                            try send(.control(start), to: connection)
                            forwardStdin(to: connection)
                        case .started:
                            lock.withLock { self.connection = connection }
                        case .exited:
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
            return .failed("\(error)")
        }
    }

    /// Sends `signal` to the container process; false before it started or after it exited.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        guard let connection = lock.withLock({ result == nil ? self.connection : nil }) else { return false }
        let message = ControlMessage(type: .signal, process: start.process ?? 1, signal: signal)
        return (try? send(.control(message), to: connection)) != nil
    }

    /// Copies our stdin to the process; EOF closes the process's stdin.
    private func forwardStdin(to connection: Int32) {
        let id = start.process ?? 1
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: Frame.maximumData)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    try? send(.control(ControlMessage(type: .closeStdin, process: id)), to: connection)
                    return
                }
                guard (try? send(.data(process: id, stream: .stdin, bytes: Array(buffer[0..<n])), to: connection)) != nil else { return }
            }
        }
    }

    private let sendLock = NSLock()

    private func send(_ frame: Frame, to fd: Int32) throws {
        let bytes = try frame.encoded()
        sendLock.lock()
        defer { sendLock.unlock() }
        writeAll(fd, bytes)
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }
}
