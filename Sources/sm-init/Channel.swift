import AgentProtocol
#if canImport(Glibc)
import Glibc
#endif

/// The agent's end of the VMM channel: whole frames in and out over one vsock stream.
final class Channel {
    let fd: Int32
    private var reader = FrameReader()
    private var pending: [Frame] = []

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    func send(_ frame: Frame) throws { try send([frame]) }

    /// Several frames in one write: one trip through the guest's vsock, not one each.
    func send(_ frames: [Frame]) throws {
        let bytes = try frames.flatMap { try $0.encoded() }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw AgentError("agent channel: write: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Frames that arrived behind the last control message `nextControl` returned.
    func takePending() -> [Frame] {
        defer { pending = [] }
        return pending
    }

    /// Reads what is available (blocking once) and returns complete frames; nil at EOF.
    func receive() throws -> [Frame]? {
        if !pending.isEmpty { defer { pending = [] }; return pending }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            let frames = try reader.feed(buffer[0..<n])
            if !frames.isEmpty { return frames }
        }
    }

    /// Waits (at most `milliseconds`) for the host to close the channel: the last
    /// frames are then known to have left the guest before it ends.
    func awaitClose(milliseconds: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        while poll(&fds, 1, milliseconds) > 0 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
        }
    }

    /// Blocks until a control message arrives (data frames before it are dropped).
    func nextControl() throws -> ControlMessage? {
        while let frames = try receive() {
            for (i, frame) in frames.enumerated() {
                if case .control(let message) = frame {
                    pending = Array(frames[(i + 1)...])
                    try message.validate()
                    return message
                }
            }
        }
        return nil
    }
}

struct AgentError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
