#if canImport(Glibc)
import Glibc
#endif
import CKVM          // <sys/epoll.h>
import SystemPackage

/// The host half of the vsock device: non-blocking AF_UNIX stream sockets, named the
/// way Firecracker's "hybrid" vsock names them, and a private epoll set over them.
/// Every call goes through the `check` chokepoint.
enum VsockHostSocket {
    /// `sockaddr_un.sun_path` holds 107 bytes and a NUL.
    static let maxPathBytes = UnixSocket.maxPathBytes

    private static var streamType: Int32 {
        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    }

    private static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        UnixSocket.withAddress(path, body)
    }

    /// A non-blocking socket listening at `path`, which only its owner may connect to
    /// (`UnixSocket.listen`: 0600 from the start, whatever the umask). A stale socket
    /// file left at `path` (a VMM that died) is replaced; any other file there is an error.
    static func listen(at path: String, backlog: Int32 = 32) throws(SystemCallError) -> OwnedDescriptor {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw SystemCallError(call: "bind", argument: path, errno: .fileExists)
            }
        }
        let socket = OwnedDescriptor(adopting: try check("socket", "AF_UNIX for \(path)") { Glibc.socket(AF_UNIX, streamType, 0) })
        try UnixSocket.listen(socket.rawValue, at: path, backlog: backlog)
        return socket
    }

    /// A non-blocking socket connected to `path`. A Unix-socket connect completes at
    /// once or fails: ENOENT / ECONNREFUSED when no one listens, EAGAIN when the
    /// listener's backlog is full.
    static func connect(to path: String) throws(SystemCallError) -> OwnedDescriptor {
        let socket = OwnedDescriptor(adopting: try check("socket", "AF_UNIX for \(path)") { Glibc.socket(AF_UNIX, streamType, 0) })
        while true {
            let result = withAddress(path) { address, length in Glibc.connect(socket.rawValue, address, length) }
            guard let result else { throw SystemCallError(call: "connect", argument: path, errno: .fileNameTooLong) }
            if result == 0 { return socket }
            if errno == EINTR { continue }
            throw SystemCallError(call: "connect", argument: path, errno: Errno(rawValue: errno))
        }
    }

    /// The next pending connection on `listener`, non-blocking and close-on-exec; nil
    /// when there is none. (`accept4` is a GNU extension Swift's Glibc does not import.)
    static func accept(_ listener: OwnedDescriptor, path: String) throws(SystemCallError) -> OwnedDescriptor? {
        let fd: Int32
        do {
            fd = try check("accept", path) { Glibc.accept(listener.rawValue, nil, nil) }
        } catch where error.errno == .resourceTemporarilyUnavailable {
            return nil
        }
        let socket = OwnedDescriptor(adopting: fd)
        try check("fcntl", "F_SETFD accepted on \(path)") { fcntl(socket.rawValue, F_SETFD, FD_CLOEXEC) }
        let flags = try check("fcntl", "F_GETFL accepted on \(path)") { fcntl(socket.rawValue, F_GETFL) }
        try check("fcntl", "F_SETFL accepted on \(path)") { fcntl(socket.rawValue, F_SETFL, flags | O_NONBLOCK) }
        return socket
    }
}

extension VsockHostSocket {
    /// What a non-blocking read or write did.
    enum Transfer: Equatable {
        case bytes(Int)
        case wouldBlock
        /// The peer will send no more (read returned 0).
        case endOfStream
        case failed(Errno)
    }

    /// `recv(2)` from `socket` without blocking into `buffer`; `peek` leaves the bytes queued.
    static func receive(_ socket: OwnedDescriptor, into buffer: UnsafeMutableRawBufferPointer, peek: Bool = false) -> Transfer {
        guard buffer.count > 0 else { return .bytes(0) }
        do {
            let n = try checkSize("recv", "vsock host socket") {
                Glibc.recv(socket.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | (peek ? MSG_PEEK : 0)))
            }
            return n == 0 ? .endOfStream : .bytes(n)
        } catch {
            return error.errno == .resourceTemporarilyUnavailable ? .wouldBlock : .failed(error.errno)
        }
    }

    /// `send(2)` to `socket` without blocking and without SIGPIPE (a closed peer is EPIPE).
    static func send(_ socket: OwnedDescriptor, _ bytes: UnsafeRawBufferPointer) -> Transfer {
        guard bytes.count > 0 else { return .bytes(0) }
        do {
            let n = try checkSize("send", "vsock host socket") {
                Glibc.send(socket.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            return .bytes(n)
        } catch {
            return error.errno == .resourceTemporarilyUnavailable ? .wouldBlock : .failed(error.errno)
        }
    }

    /// `shutdown(SHUT_WR)`: the peer reads end-of-file once it has read what was sent.
    static func shutdownWrite(_ socket: OwnedDescriptor) {
        _ = Glibc.shutdown(socket.rawValue, Int32(SHUT_WR))
    }

    /// Whether the peer has closed both directions (POLLHUP), as opposed to only its
    /// sending side (`shutdown(SHUT_WR)`).
    static func peerHungUp(_ socket: OwnedDescriptor) -> Bool {
        var entry = pollfd(fd: socket.rawValue, events: 0, revents: 0)
        return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLHUP) != 0
    }
}

/// The device's own epoll set over its host sockets (Firecracker's vsock muxer does
/// the same): the VMM's event loop watches just this one descriptor, which is readable
/// while any socket here has an event. Every registration is EPOLLONESHOT, so a
/// socket reports once and stays quiet until it is re-armed; a socket the device
/// cannot serve now (no guest credit, no receive buffers) is simply not re-armed, and
/// nothing spins.
final class VsockPoller {
    let descriptor: OwnedDescriptor

    init() throws(SystemCallError) {
        descriptor = OwnedDescriptor(adopting: try check("epoll_create1", "vsock") { epoll_create1(Int32(EPOLL_CLOEXEC)) })
    }

    static let readable = EPOLLIN.rawValue
    static let writable = EPOLLOUT.rawValue
    static let hangUp = EPOLLHUP.rawValue | EPOLLERR.rawValue

    /// Registers `socket`; `events` 0 registers it disarmed (EPOLLHUP / EPOLLERR are
    /// always reported by epoll, once).
    func add(_ socket: OwnedDescriptor, token: UInt64, events: UInt32) throws(SystemCallError) {
        try control(EPOLL_CTL_ADD, socket, token: token, events: events)
    }

    /// Re-arms `socket` with `events`.
    func modify(_ socket: OwnedDescriptor, token: UInt64, events: UInt32) throws(SystemCallError) {
        try control(EPOLL_CTL_MOD, socket, token: token, events: events)
    }

    func remove(_ socket: OwnedDescriptor) {
        _ = epoll_ctl(descriptor.rawValue, EPOLL_CTL_DEL, socket.rawValue, nil as UnsafeMutablePointer<epoll_event>?)
    }

    private func control(_ operation: Int32, _ socket: OwnedDescriptor, token: UInt64, events: UInt32) throws(SystemCallError) {
        var event = epoll_event()
        event.events = events | EPOLLONESHOT.rawValue
        event.data.u64 = token
        try check("epoll_ctl", "vsock fd \(socket.rawValue)") { epoll_ctl(descriptor.rawValue, operation, socket.rawValue, &event) }
    }

    /// The events ready now (no waiting), at most `limit`. Each one disarms its socket.
    func ready(limit: Int = 32) -> [(token: UInt64, events: UInt32)] {
        var events = [epoll_event](repeating: epoll_event(), count: limit)
        let n = events.withUnsafeMutableBufferPointer { epoll_wait(descriptor.rawValue, $0.baseAddress, Int32(limit), 0) }
        guard n > 0 else { return [] }
        return events[0..<Int(n)].map { ($0.data.u64, $0.events) }
    }

    /// Whether an event is ready (for tests and the idle path).
    var hasEvents: Bool {
        var entry = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1
    }
}
