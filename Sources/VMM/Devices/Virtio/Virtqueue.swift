/// A split virtqueue (virtio 1.2 §2.7), device side. Depends only on guest memory.
/// Every descriptor the guest wrote is checked: indices in range, chains bounded by
/// the queue size (a loop ends as an error), buffers inside guest RAM.
public struct Virtqueue: Sendable {
    public struct Buffer: Sendable, Equatable {
        public var address: GuestAddress
        public var length: UInt32
    }

    /// One request: the driver's readable buffers, then the buffers the device fills.
    public struct Chain: Sendable, Equatable {
        public var head: UInt16
        public var readable: [Buffer] = []
        public var writable: [Buffer] = []
        public var readableLength: Int { readable.reduce(0) { $0 + Int($1.length) } }
        public var writableLength: Int { writable.reduce(0) { $0 + Int($1.length) } }
    }

    public enum QueueError: Error, CustomStringConvertible, Sendable, Equatable {
        case memory(GuestMemoryError)
        case descriptorIndex(UInt16, size: UInt16)
        case chainTooLong(head: UInt16, limit: Int)
        case indirectNotNegotiated(head: UInt16)
        case readableAfterWritable(head: UInt16)
        case availableIndexJump(from: UInt16, to: UInt16, size: UInt16)
        case notReady

        public var description: String {
            switch self {
            case .memory(let e): return "virtqueue: \(e)"
            case let .descriptorIndex(i, size): return "virtqueue: descriptor index \(i) outside a queue of \(size)"
            case let .chainTooLong(head, limit): return "virtqueue: chain from descriptor \(head) exceeds \(limit) descriptors (loop?)"
            case .indirectNotNegotiated(let head): return "virtqueue: indirect descriptor in chain \(head) but VIRTIO_F_INDIRECT_DESC was not offered"
            case .readableAfterWritable(let head): return "virtqueue: chain \(head) has a device-readable descriptor after a writable one"
            case let .availableIndexJump(from, to, size): return "virtqueue: available index moved from \(from) to \(to), more than the queue size \(size)"
            case .notReady: return "virtqueue: not ready"
            }
        }
    }

    static let flagNext: UInt16 = 1
    static let flagWrite: UInt16 = 2
    static let flagIndirect: UInt16 = 4
    static let availableNoInterrupt: UInt16 = 1
    static let usedNoNotify: UInt16 = 1

    public let maxSize: UInt16
    public var size: UInt16
    public var ready = false
    public var descriptorTable = GuestAddress(0)
    public var availableRing = GuestAddress(0)
    public var usedRing = GuestAddress(0)
    public private(set) var nextAvailable: UInt16 = 0
    public private(set) var nextUsed: UInt16 = 0

    public init(maxSize: UInt16) {
        precondition(maxSize > 0 && maxSize & (maxSize - 1) == 0 && maxSize <= 32768)
        self.maxSize = maxSize
        self.size = maxSize
    }

    public mutating func reset() {
        self = Virtqueue(maxSize: maxSize)
    }

    /// Whether the driver's configuration is usable (virtio 1.2 §2.7 alignment and sizes).
    public func validate(in memory: GuestMemory) -> String? {
        guard size > 0, size <= maxSize, size & (size - 1) == 0 else { return "queue size \(size) (max \(maxSize), power of two)" }
        let n = Int(size)
        let areas: [(String, GuestAddress, Int, UInt64)] = [
            ("descriptor table", descriptorTable, 16 * n, 16),
            ("available ring", availableRing, 6 + 2 * n, 2),
            ("used ring", usedRing, 6 + 8 * n, 4),
        ]
        for (name, address, length, alignment) in areas {
            guard address.rawValue % alignment == 0 else { return "\(name) at \(address) is not \(alignment)-byte aligned" }
            guard memory.contains(address, length: length) else { return "\(name) at \(address) (\(length) bytes) is outside guest RAM" }
        }
        return nil
    }

    /// The next chain the driver made available, or nil when there is none.
    /// `checkingBuffers` false leaves the buffers' bounds to the device: for a device
    /// that never accesses them but treats them as guest-physical ranges (the
    /// balloon), which refuses an out-of-RAM range as one bad request instead of
    /// stopping (the descriptors themselves are still checked).
    public mutating func pop(_ memory: GuestMemory, checkingBuffers: Bool = true) throws(QueueError) -> Chain? {
        guard ready else { throw .notReady }
        let available: UInt16
        do { available = try memory.loadIndex(at: availableRing + 2) } catch { throw .memory(error) }
        guard available != nextAvailable else { return nil }
        guard available &- nextAvailable <= size else {
            throw .availableIndexJump(from: nextAvailable, to: available, size: size)
        }
        let slot = availableRing + 4 + UInt64(nextAvailable % size) * 2
        let head: UInt16
        do { head = try memory.read(UInt16.self, at: slot) } catch { throw .memory(error) }
        nextAvailable &+= 1
        return try walk(head: head, memory, checkingBuffers: checkingBuffers)
    }

    func walk(head: UInt16, _ memory: GuestMemory, checkingBuffers: Bool = true) throws(QueueError) -> Chain {
        var chain = Chain(head: head)
        var index = head
        for _ in 0..<Int(size) {
            guard index < size else { throw .descriptorIndex(index, size: size) }
            let at = descriptorTable + UInt64(index) * 16
            let address: UInt64, length: UInt32, flags: UInt16, next: UInt16
            do {
                address = try memory.read(UInt64.self, at: at)
                length = try memory.read(UInt32.self, at: at + 8)
                flags = try memory.read(UInt16.self, at: at + 12)
                next = try memory.read(UInt16.self, at: at + 14)
            } catch { throw .memory(error) }
            guard flags & Self.flagIndirect == 0 else { throw .indirectNotNegotiated(head: head) }
            guard !checkingBuffers || memory.contains(GuestAddress(address), length: Int(length)) else {
                throw .memory(.outOfBounds(address: GuestAddress(address), length: Int(length)))
            }
            let buffer = Buffer(address: GuestAddress(address), length: length)
            if flags & Self.flagWrite != 0 {
                chain.writable.append(buffer)
            } else {
                guard chain.writable.isEmpty else { throw .readableAfterWritable(head: head) }
                chain.readable.append(buffer)
            }
            guard flags & Self.flagNext != 0 else { return chain }
            index = next
        }
        throw .chainTooLong(head: head, limit: Int(size))
    }

    /// Returns a chain to the driver with `length` bytes written into it.
    public mutating func pushUsed(head: UInt16, length: UInt32, _ memory: GuestMemory) throws(QueueError) {
        let slot = usedRing + 4 + UInt64(nextUsed % size) * 8
        do {
            try memory.write(UInt32(head), at: slot)
            try memory.write(length, at: slot + 4)
            nextUsed &+= 1
            try memory.storeIndex(nextUsed, at: usedRing + 2)   // release: the element is visible first
        } catch { throw .memory(error) }
    }

    /// Whether the driver wants an interrupt for used buffers (VRING_AVAIL_F_NO_INTERRUPT clear).
    public func wantsInterrupt(_ memory: GuestMemory) -> Bool {
        guard let flags = try? memory.loadIndex(at: availableRing) else { return true }
        return flags & Self.availableNoInterrupt == 0
    }

    /// VRING_USED_F_NO_NOTIFY in the used ring's flags: a hint, the driver may still notify.
    public func setNotifications(enabled: Bool, _ memory: GuestMemory) {
        try? memory.storeIndex(enabled ? 0 : Self.usedNoNotify, at: usedRing)
    }

    /// Sets the ring positions from a snapshot (the rings are in restored guest RAM).
    public mutating func restorePositions(nextAvailable: UInt16, nextUsed: UInt16) {
        self.nextAvailable = nextAvailable
        self.nextUsed = nextUsed
    }

    /// Undoes the last `pop` (the device could not serve it yet, e.g. no input for a receive buffer).
    public mutating func unpop() {
        nextAvailable &-= 1
    }
}

extension Virtqueue.Chain {
    /// Copies the readable buffers out of guest memory, at most `limit` bytes.
    public func readAll(_ memory: GuestMemory, limit: Int) throws(GuestMemoryError) -> [UInt8] {
        var bytes: [UInt8] = []
        for buffer in readable {
            if bytes.count >= limit { break }
            let n = min(Int(buffer.length), limit - bytes.count)
            // A zero-length buffer holds nothing, and the ones after it still count.
            if n > 0 { bytes += try memory.readBytes(at: buffer.address, count: n) }
        }
        return bytes
    }

    /// Copies `bytes` into the writable buffers; returns how many fit.
    public func writeAll(_ bytes: ArraySlice<UInt8>, _ memory: GuestMemory) throws(GuestMemoryError) -> Int {
        var offset = bytes.startIndex
        for buffer in writable where offset < bytes.endIndex {
            let n = min(Int(buffer.length), bytes.endIndex - offset)
            try memory.write(bytes: Array(bytes[offset..<offset + n]), at: buffer.address)
            offset += n
        }
        return offset - bytes.startIndex
    }
}
