import Foundation
import CPosix
import VMM

/// The VMM process's control socket (`<state>/control.sock`): a request line per
/// connection, a reply line. Requests: `start`, `kill <signal>`, and `exec <process
/// JSON>` with the caller's three stdio fds attached (SCM_RIGHTS), after whose `ok
/// <pid>` the connection stays open for `kill`/`resize` lines from the caller and the
/// final `exit <code>` / `signal <n>` line. Replies: `ok [...]` or `error <message>`.
/// Lines are bounded (1 MiB: a process JSON); the socket is 0600 from the moment it
/// appears (`listenUnix`), in a 0711 directory.
package enum ControlChannel {
    package static let maximumLine = 1 << 20

    /// One request as the server received it.
    package struct Request {
        package let line: String
        /// fds that came with it (exec's stdio), owned by the handler.
        package let fds: [Int32]
        /// The connection: a handler that returns nil keeps it (exec) and closes it.
        package let connection: Int32
    }

    /// Sends `request` and returns the reply's message (throws the error text).
    package static func request(_ request: String, socket path: String, timeout: Int = 120) throws -> String {
        let fd = try connectUnix(path)
        defer { close(fd) }
        var time = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        guard writeAll(fd, Array((request + "\n").utf8)) else { throw RuntimeError.system("write", path) }
        return try reply(fd, path: path)
    }

    /// Reads one reply line: `ok [message]` returns the message, `error m` throws m.
    package static func reply(_ fd: Int32, path: String) throws -> String {
        guard let reply = readLine(fd) else { throw RuntimeError("no reply from the container's VMM on \(path)") }
        if reply == "ok" { return "" }
        if reply.hasPrefix("ok ") { return String(reply.dropFirst(3)) }
        if reply.hasPrefix("error ") { throw RuntimeError(String(reply.dropFirst(6))) }
        throw RuntimeError("bad reply from the container's VMM: \(reply.prefix(80))")
    }

    /// Serves requests, each connection on a thread of its own (at most 64 at once).
    /// The accept loop ends only when the server is stopped: a failed accept (out of
    /// fds or memory, a connection that went away) is retried after a pause, since
    /// without this loop nobody can reach the VMM any more but with SIGKILL.
    package final class Server: @unchecked Sendable {
        /// accept(2) on the listener (a test may put failures in front of it).
        package typealias Accept = @Sendable (Int32) -> Int32

        private let listener: Int32
        private let path: String
        private let active = NSLock()
        private var connections = 0
        private var stopped = false

        package init(path: String, accept: @escaping Accept = { Foundation.accept($0, nil, nil) },
             handler: @escaping @Sendable (Request) -> Result<String, RuntimeError>?) throws {
            self.path = path
            listener = try listenUnix(path)
            Thread.detachNewThread { [self] in acceptLoop(accept, handler) }
        }

        /// The longest pause between two failed accepts.
        package static let maximumPause: useconds_t = 500_000

        private func acceptLoop(_ accept: Accept, _ handler: @escaping @Sendable (Request) -> Result<String, RuntimeError>?) {
            var pause: useconds_t = 0
            while true {
                let connection = accept(listener)
                if connection < 0 {
                    let error = errno
                    if active.withLock({ stopped }) { return }
                    if error == EINTR || error == ECONNABORTED { continue }
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM, EPROTO...: wait for what is
                    // short to come back (10 ms, doubling up to the maximum).
                    pause = min(max(pause * 2, 10_000), Self.maximumPause)
                    usleep(pause)
                    continue
                }
                pause = 0
                let admitted = active.withLock { () -> Bool in
                    guard connections < 64 else { return false }
                    connections += 1
                    return true
                }
                guard admitted else { close(connection); continue }
                Thread.detachNewThread { [self] in
                    serve(connection, handler)
                    active.withLock { connections -= 1 }
                }
            }
        }

        private func serve(_ connection: Int32, _ handler: @Sendable (Request) -> Result<String, RuntimeError>?) {
            var time = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
            guard let (line, fds) = ControlChannel.readRequest(connection) else { close(connection); return }
            guard let result = handler(Request(line: line, fds: fds, connection: connection)) else { return }
            fds.forEach { _ = close($0) }
            let reply: String
            switch result {
            case .success(let message): reply = message.isEmpty ? "ok" : "ok " + message
            case .failure(let error): reply = "error " + error.description.replacingOccurrences(of: "\n", with: " ")
            }
            _ = writeAll(connection, Array((reply + "\n").utf8))
            close(connection)
        }

        package func stop() {
            active.withLock { stopped = true }
            shutdown(listener, Int32(SHUT_RDWR))
            unlink(path)
        }
    }

    /// The first line of a request and the fds sent with it.
    package static func readRequest(_ fd: Int32) -> (String, [Int32])? {
        var fds = [Int32](repeating: -1, count: 3)
        var count: Int32 = 0
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        let n = chunk.withUnsafeMutableBytes { cposix_receive_fds(fd, $0.baseAddress, UInt($0.count), &fds, &count) }
        let received = Array(fds.prefix(Int(count)))
        guard n > 0 else { received.forEach { _ = close($0) }; return nil }
        var line = Array(chunk[0..<n])
        while !line.contains(0x0a) {
            guard line.count < maximumLine, let more = readSome(fd) else { received.forEach { _ = close($0) }; return nil }
            line += more
        }
        let end = line.firstIndex(of: 0x0a)!
        return (String(decoding: line[..<end], as: UTF8.self), received)
    }

    package static func readSome(_ fd: Int32) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            return n > 0 ? Array(buffer[0..<n]) : nil
        }
    }

    package static func readLine(_ fd: Int32) -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < maximumLine {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return nil }
            if byte == 0x0a { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        return nil
    }
}

package func unixAddress(_ path: String) throws -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw RuntimeError("socket path too long: \(path)") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
    return address
}

/// A socket listening at `path` that only its owner may connect to, whatever the
/// umask (`UnixSocket.listen`); a file already at `path` is replaced.
package func listenUnix(_ path: String, backlog: Int32 = 8) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw RuntimeError.system("socket", path) }
    do { try UnixSocket.listen(fd, at: path, backlog: backlog) } catch {
        close(fd)
        throw RuntimeError("\(error)")
    }
    return fd
}

package func connectUnix(_ path: String) throws -> Int32 {
    var address = try unixAddress(path)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw RuntimeError.system("socket", path) }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        let error = RuntimeError.system("connect", path)
        close(fd)
        throw error
    }
    return fd
}

@discardableResult
package func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return false }
        offset += n
    }
    return true
}
