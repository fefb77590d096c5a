import Foundation

/// The VMM process's control socket (`<state>/control.sock`): one request line per
/// connection, one reply line. Requests: `start`, `kill <signal>`. Replies: `ok` or
/// `error <message>`. Lines are bounded (4 KiB); the socket is mode 0600 in a 0711
/// directory, so only root reaches it.
enum ControlChannel {
    static let maximumLine = 4096

    /// Sends `request` and returns the reply's message (throws the error text).
    static func request(_ request: String, socket path: String, timeout: Int = 120) throws -> String {
        let fd = try connectUnix(path)
        defer { close(fd) }
        var time = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        guard writeAll(fd, Array((request + "\n").utf8)) else { throw RuntimeError.system("write", path) }
        guard let reply = readLine(fd) else { throw RuntimeError("no reply from the container's VMM on \(path)") }
        if reply == "ok" { return "" }
        if reply.hasPrefix("ok ") { return String(reply.dropFirst(3)) }
        if reply.hasPrefix("error ") { throw RuntimeError(String(reply.dropFirst(6))) }
        throw RuntimeError("bad reply from the container's VMM: \(reply.prefix(80))")
    }

    /// Serves requests on a thread of its own, one connection at a time.
    final class Server: @unchecked Sendable {
        private let listener: Int32
        private let path: String

        init(path: String, handler: @escaping @Sendable (String) -> Result<String, RuntimeError>) throws {
            self.path = path
            unlink(path)
            listener = try listenUnix(path)
            chmod(path, 0o600)
            let listener = listener
            Thread.detachNewThread {
                while true {
                    let connection = accept(listener, nil, nil)
                    if connection < 0 {
                        if errno == EINTR || errno == ECONNABORTED { continue }
                        return
                    }
                    var time = timeval(tv_sec: 5, tv_usec: 0)
                    setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
                    if let line = readLine(connection) {
                        let reply: String
                        switch handler(line) {
                        case .success(let message): reply = message.isEmpty ? "ok" : "ok " + message
                        case .failure(let error): reply = "error " + error.description.replacingOccurrences(of: "\n", with: " ")
                        }
                        _ = writeAll(connection, Array((reply + "\n").utf8))
                    }
                    close(connection)
                }
            }
        }

        func stop() {
            shutdown(listener, Int32(SHUT_RDWR))
            unlink(path)
        }
    }

    private static func readLine(_ fd: Int32) -> String? {
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

func unixAddress(_ path: String) throws -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw RuntimeError("socket path too long: \(path)") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
    return address
}

func listenUnix(_ path: String, backlog: Int32 = 8) throws -> Int32 {
    var address = try unixAddress(path)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw RuntimeError.system("socket", path) }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0, listen(fd, backlog) == 0 else {
        let error = RuntimeError.system("listen", path)
        close(fd)
        throw error
    }
    return fd
}

func connectUnix(_ path: String) throws -> Int32 {
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
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return false }
        offset += n
    }
    return true
}
