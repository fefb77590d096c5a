#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// virtio-vsock (virtio 1.2 §5.10), served in the VMM: there is no vhost-vsock on the
/// build machines. The host end is Firecracker's "hybrid" vsock, Unix sockets named
/// after one path:
///
/// - the guest connects to (CID 2, port P): the device connects to `<path>_P`;
///   nobody listening there means RST, so the guest's connect fails.
/// - a host process connects to `<path>` and writes "CONNECT <P>\n": the device asks
///   the guest to connect to guest port P from a host port it picks (2^30 upwards)
///   and, once the guest accepts, writes "OK <host port>\n" before the stream.
///
/// Queues: receive (0, device → guest), transmit (1, guest → device), event (2,
/// never used: there is no transport reset without snapshots). Guest packets are
/// answered in the receive queue, in order: control replies first, then stream data
/// read from host sockets only when the guest has credit and a buffer for it.
///
/// Every `VirtioDevice` method and `handleHostEvents` run under the transport lock;
/// host sockets sit in the device's own epoll set (`hostEvents`), which the VMM's
/// event loop watches (see `hostEventsReady(on:)`).
public final class VirtioVsock: VirtioDevice, @unchecked Sendable {
    public let deviceType: UInt32 = 19
    public let features: UInt64 = VirtioFeature.version1
    /// The receive queue is filled with 4 KiB buffers by the Linux driver at probe.
    public let queueSizes: [UInt16] = [128, 128, 16]
    static let receiveQueue = 0, transmitQueue = 1, eventQueue = 2

    /// Bounds on what the guest and host processes can make the device hold.
    public struct Limits: Sendable {
        /// Our receive buffer per connection (the buf_alloc we advertise): the most
        /// guest bytes waiting for a slow host socket.
        public var connectionBuffer = 256 << 10
        /// Live connections (both directions together).
        public var maxConnections = 64
        /// Host connections accepted but still without their "CONNECT <port>" line.
        public var maxPendingHostConnections = 16
        /// The largest payload of one packet, either way (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
        public var maxPayload = 64 << 10
        /// Send CREDIT_UPDATE when the guest's view of our free space drops below this.
        public var creditUpdateThreshold = 64 << 10
        /// RST replies waiting for receive buffers; beyond this they are dropped.
        public var maxPendingResets = 1024

        public init() {}
    }

    public enum ConfigurationError: Error, CustomStringConvertible {
        /// The guest CID is reserved (0 to 2) or does not fit 32 bits less VMADDR_CID_ANY.
        case invalidGuestCID(UInt64)
        /// `<path>_<port>` would not fit in a sockaddr_un (107 bytes).
        case socketPathTooLong(String)
        /// Creating the listening socket or the epoll set failed.
        case system(SystemCallError)

        public var description: String {
            switch self {
            case .invalidGuestCID(let cid): return "vsock guest CID \(cid): want 3 to \(VsockCID.any - 1)"
            case .socketPathTooLong(let path):
                return "vsock socket path `\(path)`: with \"_<port>\" it exceeds \(VsockHostSocket.maxPathBytes) bytes"
            case .system(let error): return "vsock: \(error)"
            }
        }
    }

    public let guestCID: UInt64
    /// Where host processes connect; guest connections go to `<socketPath>_<port>`.
    public let socketPath: String
    public let limits: Limits
    /// First port handed to the host end of a host-initiated connection (as Firecracker).
    static let firstHostPort: UInt32 = 1 << 30
    static let listenerToken: UInt64 = 0
    /// "CONNECT 4294967295\r\n" is 20 bytes; a longer line is not a command.
    static let maxCommandLine = 32

    let poller: VsockPoller
    let listener: OwnedDescriptor
    /// The socket file's identity, so `deinit` removes only the file this device made.
    private let socketFile: (device: UInt64, inode: UInt64)?
    let log: @Sendable (String) -> Void
    /// Counts activations; lets `hostEventsReady` tell a stale idle drain from a live one.
    private let activations = Mutex<UInt64>(0)

    // Guarded by the transport lock:
    var active = false
    var connections: [VsockConnection.Key: VsockConnection] = [:]
    /// Which connection each registered socket belongs to.
    var connectionTokens: [UInt64: VsockConnection.Key] = [:]
    var pendingHostConnections: [UInt64: PendingHostConnection] = [:]
    var replies = ReplyQueue()
    var nextToken: UInt64 = 1
    var nextHostPort = VirtioVsock.firstHostPort
    /// Header plus payload of one receive packet, reused.
    var scratch: [UInt8] = []
    private var logBudget = 32

    /// The descriptor the VMM's event loop watches: readable while a host socket of
    /// this device has an event.
    public var hostEvents: OwnedDescriptor { poller.descriptor }

    /// Creates the device and starts listening at `socketPath` (host processes may
    /// connect before the guest driver is up: they wait in the backlog).
    public init(guestCID: UInt64, socketPath: String, limits: Limits = Limits(),
                log: @escaping @Sendable (String) -> Void) throws(ConfigurationError) {
        guard guestCID >= VsockCID.firstGuest, guestCID < VsockCID.any else { throw .invalidGuestCID(guestCID) }
        guard socketPath.utf8.count + "_\(UInt32.max)".utf8.count <= VsockHostSocket.maxPathBytes else {
            throw .socketPathTooLong(socketPath)
        }
        self.guestCID = guestCID
        self.socketPath = socketPath
        self.limits = limits
        self.log = log
        do {
            poller = try VsockPoller()
            listener = try VsockHostSocket.listen(at: socketPath)
            try poller.add(listener, token: Self.listenerToken, events: 0)
        } catch {
            throw .system(error)
        }
        socketFile = Self.identity(of: socketPath)
    }

    deinit {
        if let socketFile, Self.identity(of: socketPath).map({ $0 == socketFile }) == true { unlink(socketPath) }
    }

    private static func identity(of path: String) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    // MARK: - VirtioDevice

    /// struct virtio_vsock_config: le64 guest_cid.
    public func readConfig(offset: Int, length: Int) -> UInt64 {
        guard offset >= 0, length > 0, length <= 8, offset <= 8 - length else { return 0 }
        return (guestCID >> (8 * UInt64(offset))) & (length == 8 ? ~0 : (1 << (8 * UInt64(length))) - 1)
    }

    /// The config space is read-only.
    public func writeConfig(offset: Int, length: Int, value: UInt64) {}

    public func activate(features: UInt64, queues: inout VirtioQueues) {
        activations.withLock { generation in
            generation &+= 1
            active = true
            rearmListener()
        }
    }

    /// Drops every connection (host sockets see end-of-file) and stops accepting
    /// until the driver is up again.
    public func reset() {
        activations.withLock { _ in
            active = false
            for connection in connections.values { poller.remove(connection.socket) }
            for pending in pendingHostConnections.values { poller.remove(pending.socket) }
            connections.removeAll()
            connectionTokens.removeAll()
            pendingHostConnections.removeAll()
            replies = ReplyQueue()
            try? poller.modify(listener, token: Self.listenerToken, events: 0)
        }
    }

    /// Snapshot state: whether the driver is up and the next host port. Only a device
    /// without connections can be saved (a host socket cannot be carried into
    /// another VMM): the guest must be at its quiescent point.
    public func captureState() throws(SnapshotError) -> [UInt8] {
        guard connections.isEmpty, pendingHostConnections.isEmpty, replies.isEmpty else {
            throw .unsupported("vsock has \(connections.count) connections, \(pendingHostConnections.count) pending host connections " +
                               "and \(replies.isEmpty ? "no" : "some") queued replies: not at a quiescent point")
        }
        var writer = SnapshotWriter()
        writer.u8(active ? 1 : 0)
        writer.u32(nextHostPort)
        return writer.bytes
    }

    public func restoreState(_ bytes: [UInt8], queues: inout VirtioQueues) throws(SnapshotError) {
        var reader = SnapshotReader(bytes, what: "virtio-vsock state")
        let wasActive = try reader.flag("active")
        let port = try reader.u32()
        try reader.finish()
        guard port >= Self.firstHostPort else { throw .malformed("vsock: next host port \(port) below \(Self.firstHostPort)") }
        nextHostPort = port
        if wasActive { activate(features: VirtioFeature.version1, queues: &queues) }
    }

    public func process(queue index: Int, queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        guard active else { return }
        switch index {
        case Self.transmitQueue:
            while let chain = try queues.pop(index) {
                let bytes: [UInt8]
                do { bytes = try chain.readAll(queues.memory, limit: VsockHeader.size + limits.maxPayload) } catch { throw .memory(error) }
                try queues.complete(index, chain, written: 0)
                receive(bytes)
            }
        case Self.receiveQueue:
            break       // new receive buffers: deliver what waits for them
        default:
            return      // event queue buffers stay with the device; no event is ever sent
        }
        try service(&queues)
    }

    // MARK: - host events

    /// What the VMM's event loop runs when `hostEvents` is readable:
    ///
    ///     try loop.add(vsock.hostEvents) { vsock.hostEventsReady(on: transport) }
    ///
    /// Serves the events under the transport lock. When the transport will not run the
    /// device (before DRIVER_OK, or stopped after a guest error), the events are taken
    /// and dropped instead, so a level-triggered loop does not spin on them; the next
    /// activation re-arms what it needs.
    public func hostEventsReady(on transport: VirtioMMIOTransport) {
        let generation = activations.withLock { $0 }
        var served = false
        transport.withDevice(VirtioVsock.self) { device, queues throws(Virtqueue.QueueError) in
            guard device === self else { return }
            served = true
            try device.handleHostEvents(&queues)
        }
        guard !served else { return }
        activations.withLock { current in
            if current == generation { _ = poller.ready(limit: 64) }
        }
    }

    /// Serves the host sockets' events and moves what it can to the guest.
    /// Runs under the transport lock (through `withDevice`, or directly in tests).
    func handleHostEvents(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        guard active else {
            _ = poller.ready(limit: 64)
            return
        }
        for (token, events) in poller.ready() {
            if token == Self.listenerToken {
                acceptHostConnections()
            } else if let pending = pendingHostConnections[token] {
                readConnectCommand(pending)
            } else if let key = connectionTokens[token], let connection = connections[key] {
                hostEvent(connection, events)
            }
        }
        try service(&queues)
    }

    // MARK: - support

    func makeToken() -> UInt64 {
        defer { nextToken &+= 1 }
        return nextToken
    }

    func rearmListener() {
        guard active else { return }
        do { try poller.modify(listener, token: Self.listenerToken, events: VsockPoller.readable) } catch {
            log("vsock: cannot watch `\(socketPath)`: \(error)")
        }
    }

    /// A guest protocol error, logged (a hostile guest gets a bounded number of lines).
    func note(_ message: @autoclosure () -> String) {
        guard logBudget > 0 else { return }
        logBudget -= 1
        log("vsock: " + message() + (logBudget == 0 ? " (further vsock errors not logged)" : ""))
    }

    /// Live connections, for tests and diagnostics.
    var connectionCount: Int { connections.count }
}

extension VirtioVsock {
    /// A host process connected to `socketPath` that has not finished its
    /// "CONNECT <port>\n" line.
    final class PendingHostConnection {
        let socket: OwnedDescriptor
        let token: UInt64
        var line: [UInt8] = []

        init(socket: OwnedDescriptor, token: UInt64) {
            self.socket = socket
            self.token = token
        }
    }

    /// Packets waiting for guest receive buffers, in order.
    struct ReplyQueue {
        enum Reply {
            /// A packet of a live connection; its header (with current credit) is made when
            /// it is sent, and it is skipped if the connection is gone by then.
            case connection(VsockConnection, VsockOperation, flags: UInt32)
            /// A finished header: RST for a packet or connection that no longer has state.
            case header(VsockHeader)
        }

        private var items: [Reply] = []
        private var head = 0
        private(set) var resets = 0

        var isEmpty: Bool { head == items.count }
        var first: Reply? { isEmpty ? nil : items[head] }

        mutating func append(_ reply: Reply) {
            if case .header = reply { resets += 1 }
            items.append(reply)
        }

        mutating func removeFirst() {
            if case .header = items[head] { resets -= 1 }
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head >= items.count / 2 {
                items.removeFirst(head)
                head = 0
            }
        }
    }
}
