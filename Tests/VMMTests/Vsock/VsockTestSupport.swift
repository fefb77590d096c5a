import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

/// All virtio-vsock suites nest here, so `swift test --filter VsockTests` runs them.
@Suite("virtio-vsock") enum VsockTests {}

struct VsockTestFailure: Error, CustomStringConvertible {
    let description: String
}

/// A fresh temporary directory, removed with everything in it.
final class VsockTemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/sm-vsock-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw VsockTestFailure(description: "mkdtemp: \(errno)")
        }
        path = String(cString: template)
    }

    deinit {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}

/// The guest side of a vsock device, as the Linux driver is: receive buffers of
/// 4 KiB plus header in the receive queue, one packet per transmit chain, and credit
/// bookkeeping in both directions. Everything runs on the test's thread: `pump` serves
/// host socket events as the event loop would.
final class VsockHarness {
    static let guestCID: UInt64 = 3
    static let rxBufferSize: UInt32 = 4096 + 44

    let directory: VsockTemporaryDirectory
    let memory: GuestMemory
    let device: VirtioVsock
    let logs = Recorder()
    var rx: MockDriver
    var tx: MockDriver
    let event: MockDriver
    var queues: VirtioQueues
    private var rxSeen: UInt16 = 0
    private var txNext: UInt16 = 0
    private let rxCount: UInt16

    /// Every packet the guest received, in order.
    var received: [VsockPacket] = []

    /// The guest's side of each connection's credit, keyed by guest port.
    struct GuestCredit {
        var bufAlloc: UInt32
        /// Bytes the guest consumed (its fwd_cnt) and told the device of.
        var fwdCnt: UInt32 = 0
        var advertisedFwdCnt: UInt32 = 0
        /// RW bytes received and sent.
        var received: UInt32 = 0
        var sent: UInt32 = 0
        /// The device's credit as last heard.
        var peerBufAlloc: UInt32 = 0
        var peerFwdCnt: UInt32 = 0
        var data: [UInt8] = []
        var peerCredit: Int { Int(peerBufAlloc) - Int(sent &- peerFwdCnt) }
    }
    var credit: [UInt32: GuestCredit] = [:]
    var guestBufAlloc: UInt32 = 256 << 10
    /// The guest consumes what it receives at once (and returns the credit).
    var autoConsume = true

    var path: String { directory.path + "/v.sock" }

    init(limits: VirtioVsock.Limits = .init(), rxBuffers: UInt16 = 64, activate: Bool = true) throws {
        directory = try VsockTemporaryDirectory()
        memory = try GuestMemory(size: 8 << 20)
        let logs = self.logs
        device = try VirtioVsock(guestCID: Self.guestCID, socketPath: directory.path + "/v.sock", limits: limits) { line in
            logs.logs.withLock { $0.append(line) }
        }
        rxCount = rxBuffers
        rx = MockDriver(memory: memory, size: 128)
        tx = ShiftedDriver(base: MockDriver(memory: memory, size: 16), shift: 0x10000).driver
        event = ShiftedDriver(base: MockDriver(memory: memory, size: 16), shift: 0x20000).driver
        queues = VirtioQueues(queues: [rx.queue(), tx.queue(), event.queue()], memory: memory)
        for i in 0..<rxBuffers {
            try rx.setDescriptor(i, .init(address: Self.rxAddress(i), length: Self.rxBufferSize, flags: 2))
            try rx.publish(i)
        }
        if activate { device.activate(features: VirtioFeature.version1, queues: &queues) }
    }

    static func rxAddress(_ i: UInt16) -> UInt64 { 0x100000 + UInt64(i) * 0x2000 }
    static func txAddress(_ i: UInt16) -> UInt64 { 0x300000 + UInt64(i) * 0x11000 }

    // MARK: guest → device

    /// Puts `bytes` in one transmit descriptor and notifies the transmit queue.
    func sendRaw(_ bytes: [UInt8], collecting: Bool = true) throws {
        let i = txNext % tx.size
        txNext &+= 1
        try memory.write(bytes: bytes, at: GuestAddress(Self.txAddress(i)))
        try tx.setDescriptor(i, .init(address: Self.txAddress(i), length: UInt32(bytes.count)))
        try tx.publish(i)
        try device.process(queue: 1, queues: &queues)
        if collecting { try collect() }
    }

    /// A header from the guest, with its credit for `guestPort`.
    func header(_ op: VsockOperation, guestPort: UInt32, hostPort: UInt32, flags: UInt32 = 0) -> VsockHeader {
        let c = credit[guestPort]
        return VsockHeader(sourceCID: Self.guestCID, destinationCID: VsockCID.host, sourcePort: guestPort,
                           destinationPort: hostPort, op: op, flags: flags,
                           bufAlloc: c?.bufAlloc ?? guestBufAlloc, fwdCnt: c?.fwdCnt ?? 0)
    }


    func send(_ op: VsockOperation, guestPort: UInt32, hostPort: UInt32, flags: UInt32 = 0, payload: [UInt8] = [],
              collecting: Bool = true) throws {
        if credit[guestPort] == nil, op == .request || op == .response {
            credit[guestPort] = GuestCredit(bufAlloc: guestBufAlloc)
        }
        if var c = credit[guestPort] {
            c.advertisedFwdCnt = c.fwdCnt
            if op == .readWrite { c.sent &+= UInt32(payload.count) }
            credit[guestPort] = c
        }
        try sendRaw(VsockPacket(header: header(op, guestPort: guestPort, hostPort: hostPort, flags: flags), payload: payload).bytes,
                    collecting: collecting)
    }

    /// Sends `bytes` as RW packets of at most `chunk`, never beyond the device's credit;
    /// while there is none, `whileBlocked` runs (the host reads) and events are served.
    func sendStream(_ bytes: [UInt8], guestPort: UInt32, hostPort: UInt32, chunk: Int = 32 << 10,
                    whileBlocked: () throws -> Void) throws {
        var offset = 0
        let deadline = vsockNow() + 20
        while offset < bytes.count {
            let room = min(chunk, credit[guestPort]?.peerCredit ?? 0, bytes.count - offset)
            if room > 0 {
                try send(.readWrite, guestPort: guestPort, hostPort: hostPort, payload: Array(bytes[offset..<offset + room]))
                offset += room
            } else {
                guard vsockNow() < deadline else { throw VsockTestFailure(description: "no credit after \(offset) bytes") }
                try whileBlocked()
                try pump(wait: 0.01)
            }
        }
    }

    // MARK: device → guest

    /// Takes what the device put in the receive queue, recycling each buffer, and
    /// keeps the guest's credit books: with `autoConsume`, consumed bytes are returned
    /// with CREDIT_UPDATE when the device's view of our space gets low.
    @discardableResult
    func collect() throws -> [VsockPacket] {
        var new: [VsockPacket] = []
        let usedIndex = try rx.usedIndex()
        while rxSeen != usedIndex {
            let (id, length) = try rx.usedElement(rxSeen)
            rxSeen &+= 1
            let bytes = try memory.readBytes(at: GuestAddress(Self.rxAddress(UInt16(id))), count: Int(length))
            guard let header = VsockHeader(bytes) else { throw VsockTestFailure(description: "receive buffer with \(length) bytes") }
            let payload = Array(bytes[44...])
            #expect(payload.count == Int(header.length), "RW length matches the used length")
            new.append(VsockPacket(header: header, payload: payload))
            try rx.publish(UInt16(id))
        }
        received += new
        var updates: [UInt32] = []
        for packet in new {
            let h = packet.header
            guard var c = credit[h.destinationPort] else { continue }
            c.peerBufAlloc = h.bufAlloc
            c.peerFwdCnt = h.fwdCnt
            if h.op == .readWrite {
                c.received &+= h.length
                c.data += packet.payload
                // The device never sends beyond the credit we last gave it.
                #expect(Int(c.received &- c.advertisedFwdCnt) <= Int(c.bufAlloc), "credit exceeded on port \(h.destinationPort)")
                guard autoConsume else {
                    credit[h.destinationPort] = c
                    continue
                }
                c.fwdCnt = c.received
                if Int(c.bufAlloc) - Int(c.received &- c.advertisedFwdCnt) < Int(c.bufAlloc) / 2 {
                    updates.append(h.destinationPort)
                }
            }
            credit[h.destinationPort] = c
        }
        if !new.isEmpty { try device.process(queue: 0, queues: &queues) }
        for port in Set(updates) {
            guard let peer = received.last(where: { $0.header.destinationPort == port })?.header else { continue }
            try send(.creditUpdate, guestPort: port, hostPort: peer.sourcePort, collecting: false)
        }
        return new
    }

    /// Lets the guest consume what it received on `guestPort` and tell the device.
    func consume(guestPort: UInt32, hostPort: UInt32) throws {
        if var c = credit[guestPort] {
            c.fwdCnt = c.received
            credit[guestPort] = c
        }
        try send(.creditUpdate, guestPort: guestPort, hostPort: hostPort)
    }

    /// Serves host socket events (waiting up to `wait` seconds for one), then collects.
    func pump(wait: Double = 0) throws {
        var entry = pollfd(fd: device.hostEvents.rawValue, events: Int16(POLLIN), revents: 0)
        _ = poll(&entry, 1, Int32(wait * 1000))
        try device.handleHostEvents(&queues)
        try collect()
    }

    /// Pumps until `condition` holds (5 s at most).
    func run(until condition: () throws -> Bool, _ what: String = "condition") throws {
        let deadline = vsockNow() + 5
        while try !condition() {
            guard vsockNow() < deadline else { throw VsockTestFailure(description: "timed out waiting for \(what)") }
            try pump(wait: 0.01)
        }
    }

    func packets(_ op: VsockOperation) -> [VsockHeader] { received.map(\.header).filter { $0.op == op } }
}

func vsockNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The host process's end: a non-blocking Unix stream socket.
struct VsockHostEnd {
    let socket: OwnedDescriptor

    static func connect(_ path: String) throws -> VsockHostEnd { VsockHostEnd(socket: try VsockHostSocket.connect(to: path)) }

    /// Accepts on `listener`, pumping the device while waiting.
    static func accept(_ listener: OwnedDescriptor, harness: VsockHarness) throws -> VsockHostEnd {
        var accepted: OwnedDescriptor?
        try harness.run(until: {
            accepted = try VsockHostSocket.accept(listener, path: "test listener")
            return accepted != nil
        }, "accept")
        return VsockHostEnd(socket: accepted!)
    }

    /// Writes as much of `bytes` as fits now; returns how much.
    func writeSome(_ bytes: ArraySlice<UInt8>) -> Int {
        guard !bytes.isEmpty else { return 0 }
        let result = bytes.withUnsafeBytes { VsockHostSocket.send(socket, $0) }
        if case .bytes(let n) = result { return n }
        return 0
    }

    /// Writes all of `bytes`, pumping the device while the socket is full.
    func write(_ bytes: [UInt8], harness: VsockHarness) throws {
        var offset = 0
        try harness.run(until: {
            offset += writeSome(bytes[offset...])
            return offset == bytes.count
        }, "host write")
    }

    enum Read: Equatable { case data([UInt8]), wouldBlock, end }

    func readNow() -> Read {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        switch buffer.withUnsafeMutableBytes({ VsockHostSocket.receive(socket, into: $0) }) {
        case .bytes(let n): return .data(Array(buffer[0..<n]))
        case .wouldBlock: return .wouldBlock
        case .endOfStream, .failed: return .end
        }
    }

    /// Reads until `count` bytes or end-of-file, pumping the device meanwhile.
    func read(count: Int, harness: VsockHarness) throws -> (bytes: [UInt8], ended: Bool) {
        var bytes: [UInt8] = []
        var ended = false
        try harness.run(until: {
            while bytes.count < count, !ended {
                switch readNow() {
                case .data(let d): bytes += d
                case .end: ended = true
                case .wouldBlock: return false
                }
            }
            return true
        }, "host read of \(count) bytes")
        return (bytes, ended)
    }

    /// Reads until end-of-file.
    func readToEnd(harness: VsockHarness) throws -> [UInt8] {
        try read(count: Int.max, harness: harness).bytes
    }

    func shutdownWrite() { VsockHostSocket.shutdownWrite(socket) }
}

/// Deterministic bytes that are not periodic in a page, so a misplaced chunk shows.
func vsockPattern(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
    var state = seed | 1
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 17; state ^= state << 5
        return UInt8(truncatingIfNeeded: state)
    }
}
