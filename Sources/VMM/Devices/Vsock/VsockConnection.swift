/// One stream between a guest AF_VSOCK socket and a host AF_UNIX socket, keyed by
/// (guest port, host port), with the credit accounting of virtio 1.2 §5.10.6.3 in
/// both directions:
///
/// - guest → host: we offer `bufAlloc` bytes of buffer; `rxCount` counts what the
///   guest sent, `fwdCount` what we wrote on to the host socket. The guest may have
///   at most `bufAlloc - (rxCount - fwdCount)` bytes in flight; a guest that sends
///   more is in violation and gets RST. The guest knows our `fwd_cnt` only as of the
///   last header we sent it (`advertisedFwdCount`), so when its view of our free space
///   gets low and we have forwarded more since, we send CREDIT_UPDATE.
/// - host → guest: the guest offers `peerBufAlloc`; we never have more than that
///   unconsumed (`txCount - peerFwdCount`). Host bytes are read from the socket only
///   when there is both guest credit and a receive buffer to put them in, so nothing
///   is buffered on this side: the socket's own buffer is the backlog.
///
/// All state is guarded by the transport lock, like the device that owns it.
final class VsockConnection {
    struct Key: Hashable, CustomStringConvertible {
        var guestPort: UInt32
        var hostPort: UInt32
        var description: String { "guest port \(guestPort) <-> host port \(hostPort)" }
    }

    enum State: Equatable {
        /// Host-initiated: REQUEST queued or sent to the guest, no RESPONSE yet.
        case requestSent
        case established
    }

    let key: Key
    let socket: OwnedDescriptor
    /// Identifies the socket in the device's epoll set.
    let token: UInt64
    var state: State

    // guest → host
    let bufAlloc: UInt32
    /// Guest bytes accepted but not yet written to the host socket.
    var toHost = ByteQueue()
    /// "OK <port>\n" for a host-initiated connection, written before any guest byte
    /// and outside the credit accounting.
    var greeting: [UInt8] = []
    var rxCount: UInt32 = 0
    var fwdCount: UInt32 = 0
    var advertisedFwdCount: UInt32 = 0
    var creditUpdateQueued = false

    // host → guest
    var peerBufAlloc: UInt32 = 0
    var peerFwdCount: UInt32 = 0
    var txCount: UInt32 = 0
    /// The socket reported readable and a read has not yet said EAGAIN.
    var hostReadable = false
    /// The host socket read end-of-file; SHUTDOWN was queued for the guest.
    var hostEnded = false

    /// VsockShutdown flags the guest sent.
    var guestShutdown: UInt32 = 0
    /// We shut the host socket's write side (the guest will send no more).
    var hostWriteClosed = false
    /// The socket failed (EPIPE, ECONNRESET...): the connection ends with RST.
    var broken = false

    /// Events the socket is armed for in the epoll set (0 when it fired or is disarmed).
    var armed: UInt32 = 0

    init(key: Key, socket: OwnedDescriptor, token: UInt64, state: State, bufAlloc: UInt32) {
        self.key = key
        self.socket = socket
        self.token = token
        self.state = state
        self.bufAlloc = bufAlloc
    }

    /// Takes the guest's credit information from any header it sent on this connection.
    func updatePeerCredit(from header: VsockHeader) {
        peerBufAlloc = header.bufAlloc
        peerFwdCount = header.fwdCnt
    }

    /// Bytes we may still send the guest. A guest that claims to have consumed more
    /// than we sent, or shrinks its buffer below what is in flight, gets 0, not a wrap.
    var peerCredit: Int {
        let inFlight = txCount &- peerFwdCount
        return inFlight > peerBufAlloc ? 0 : Int(peerBufAlloc - inFlight)
    }

    /// Our buffer space the guest has not used yet (for checking an RW against).
    var freeSpace: Int { Int(bufAlloc) - toHost.count }

    /// Our free space as the guest last heard of it.
    var guestViewOfCredit: Int {
        let used = rxCount &- advertisedFwdCount
        return used > bufAlloc ? 0 : Int(bufAlloc - used)
    }

    /// Whether the guest should hear of our credit now: its view is low and we have
    /// forwarded bytes since we last told it.
    func needsCreditUpdate(threshold: Int) -> Bool {
        state == .established && fwdCount != advertisedFwdCount && guestViewOfCredit < threshold
    }

    /// The socket should be watched for input: we would send what it reads.
    var wantsHostInput: Bool {
        state == .established && !hostEnded && !broken && guestShutdown & VsockShutdown.receive == 0
    }

    /// Whether host bytes may be read now (there is somewhere for them to go).
    var canSendToGuest: Bool { wantsHostInput && hostReadable && peerCredit > 0 }

    /// Bytes waiting for the host socket.
    var hasOutput: Bool { !greeting.isEmpty || !toHost.isEmpty }

    /// The guest closed both directions and everything it sent reached the host:
    /// the connection ends with our RST, as the guest's close waits for.
    var guestFinished: Bool { guestShutdown == VsockShutdown.both && !hasOutput }

    /// The events this socket should be armed for.
    var desiredEvents: UInt32 {
        var events: UInt32 = 0
        if wantsHostInput && !hostReadable { events |= VsockPoller.readable }
        if hasOutput && !hostWriteClosed && !broken { events |= VsockPoller.writable }
        return events
    }

    /// A header from the host side of this connection, carrying our credit.
    func header(guestCID: UInt64, _ op: VsockOperation, flags: UInt32 = 0, length: UInt32 = 0) -> VsockHeader {
        advertisedFwdCount = fwdCount
        return VsockHeader(sourceCID: VsockCID.host, destinationCID: guestCID, sourcePort: key.hostPort,
                           destinationPort: key.guestPort, length: length, type: .stream, op: op, flags: flags,
                           bufAlloc: bufAlloc, fwdCnt: fwdCount)
    }

    /// Writes what is waiting to the host socket without blocking; returns false when
    /// the socket failed. `fwdCount` advances by the guest bytes written.
    func flush() -> Bool {
        while !greeting.isEmpty {
            switch greeting.withUnsafeBytes({ VsockHostSocket.send(socket, $0) }) {
            case .bytes(let n): greeting.removeFirst(n)
            case .wouldBlock: return true
            case .endOfStream, .failed: broken = true; return false
            }
        }
        while !toHost.isEmpty {
            switch toHost.withFront({ VsockHostSocket.send(socket, $0) }) {
            case .bytes(let n):
                toHost.removeFirst(n)
                fwdCount &+= UInt32(n)
            case .wouldBlock: return true
            case .endOfStream, .failed: broken = true; return false
            }
        }
        return true
    }

    /// A FIFO of bytes with O(1) amortised removal from the front.
    struct ByteQueue {
        private var storage: [UInt8] = []
        private var head = 0

        var count: Int { storage.count - head }
        var isEmpty: Bool { count == 0 }

        mutating func append(_ bytes: [UInt8]) {
            if head > 0 && head >= storage.count / 2 {
                storage.removeFirst(head)
                head = 0
            }
            storage += bytes
        }

        mutating func removeFirst(_ n: Int) {
            head += min(n, count)
            if head == storage.count {
                storage.removeAll(keepingCapacity: true)
                head = 0
            }
        }

        /// Lends the queued bytes; the pointer must not escape.
        func withFront<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
            storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[head...])) }
        }
    }
}
