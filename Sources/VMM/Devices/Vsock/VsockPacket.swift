/// The virtio-vsock wire format (virtio 1.2 §5.10.6, <linux/virtio_vsock.h>): every
/// packet is a 44-byte little-endian `struct virtio_vsock_hdr`, then `len` payload
/// bytes (only RW carries any). Nothing here trusts a guest-written field: a header
/// is parsed from a copy, and its length is checked against what was really sent.

/// `enum virtio_vsock_op`. A struct with a raw value, so an unknown op survives
/// parsing and the device can answer it with RST instead of failing to decode.
public struct VsockOperation: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let invalid = Self(rawValue: 0)
    /// Connect request (VIRTIO_VSOCK_OP_REQUEST).
    public static let request = Self(rawValue: 1)
    /// Connect accepted (VIRTIO_VSOCK_OP_RESPONSE).
    public static let response = Self(rawValue: 2)
    /// Connection refused or aborted (VIRTIO_VSOCK_OP_RST).
    public static let reset = Self(rawValue: 3)
    /// The sender will receive and/or send no more (VIRTIO_VSOCK_OP_SHUTDOWN; flags say which).
    public static let shutdown = Self(rawValue: 4)
    /// Stream payload (VIRTIO_VSOCK_OP_RW).
    public static let readWrite = Self(rawValue: 5)
    /// The sender's buf_alloc / fwd_cnt, unsolicited (VIRTIO_VSOCK_OP_CREDIT_UPDATE).
    public static let creditUpdate = Self(rawValue: 6)
    /// Asks for a CREDIT_UPDATE (VIRTIO_VSOCK_OP_CREDIT_REQUEST).
    public static let creditRequest = Self(rawValue: 7)

    public var description: String {
        switch self {
        case .invalid: return "INVALID"
        case .request: return "REQUEST"
        case .response: return "RESPONSE"
        case .reset: return "RST"
        case .shutdown: return "SHUTDOWN"
        case .readWrite: return "RW"
        case .creditUpdate: return "CREDIT_UPDATE"
        case .creditRequest: return "CREDIT_REQUEST"
        default: return "op \(rawValue)"
        }
    }
}

/// `enum virtio_vsock_type`; only STREAM is offered (SEQPACKET needs a feature bit).
public struct VsockType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let stream = Self(rawValue: 1)
    public static let seqpacket = Self(rawValue: 2)
}

/// VIRTIO_VSOCK_OP_SHUTDOWN flags (`enum virtio_vsock_shutdown`).
public enum VsockShutdown {
    /// The sender will receive no more data.
    public static let receive: UInt32 = 1
    /// The sender will send no more data.
    public static let send: UInt32 = 2
    public static let both: UInt32 = 3
}

/// Well-known context IDs (vsock(7)).
public enum VsockCID {
    /// VMADDR_CID_HOST: the host, as the guest addresses it.
    public static let host: UInt64 = 2
    /// The lowest CID a guest may have (0, 1 and 2 are reserved).
    public static let firstGuest: UInt64 = 3
    /// VMADDR_CID_ANY (-1U): never a valid guest CID.
    public static let any: UInt64 = 0xffff_ffff
}

/// `struct virtio_vsock_hdr`.
public struct VsockHeader: Equatable, Sendable {
    public static let size = 44

    public var sourceCID: UInt64
    public var destinationCID: UInt64
    public var sourcePort: UInt32
    public var destinationPort: UInt32
    /// Payload bytes after the header (`len`).
    public var length: UInt32
    public var type: VsockType
    public var op: VsockOperation
    public var flags: UInt32
    /// The sender's receive buffer size for this connection (`buf_alloc`).
    public var bufAlloc: UInt32
    /// Bytes the sender has consumed from its receive buffer, ever, wrapping (`fwd_cnt`).
    public var fwdCnt: UInt32

    public init(sourceCID: UInt64, destinationCID: UInt64, sourcePort: UInt32, destinationPort: UInt32,
                length: UInt32 = 0, type: VsockType = .stream, op: VsockOperation, flags: UInt32 = 0,
                bufAlloc: UInt32 = 0, fwdCnt: UInt32 = 0) {
        self.sourceCID = sourceCID
        self.destinationCID = destinationCID
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.type = type
        self.op = op
        self.flags = flags
        self.bufAlloc = bufAlloc
        self.fwdCnt = fwdCnt
    }

    /// Decodes the first 44 bytes of `bytes`; nil when there are fewer.
    public init?(_ bytes: some RandomAccessCollection<UInt8>) {
        guard bytes.count >= Self.size else { return nil }
        var reader = Reader(bytes)
        sourceCID = reader.u64()
        destinationCID = reader.u64()
        sourcePort = reader.u32()
        destinationPort = reader.u32()
        length = reader.u32()
        type = VsockType(rawValue: reader.u16())
        op = VsockOperation(rawValue: reader.u16())
        flags = reader.u32()
        bufAlloc = reader.u32()
        fwdCnt = reader.u32()
    }

    /// The 44 wire bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        encode(into: &out)
        return out
    }

    /// Appends the 44 wire bytes to `out`.
    public func encode(into out: inout [UInt8]) {
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        put(sourceCID); put(destinationCID); put(sourcePort); put(destinationPort)
        put(length); put(type.rawValue); put(op.rawValue); put(flags); put(bufAlloc); put(fwdCnt)
    }

    /// The header of a reply to `self`: addresses swapped, nothing else set.
    func reply(_ op: VsockOperation, flags: UInt32 = 0) -> VsockHeader {
        VsockHeader(sourceCID: destinationCID, destinationCID: sourceCID, sourcePort: destinationPort,
                    destinationPort: sourcePort, type: type, op: op, flags: flags)
    }

    /// Reads little-endian integers from the front of a byte collection whose length the
    /// caller has checked.
    private struct Reader<C: RandomAccessCollection<UInt8>> {
        let bytes: C
        var index: C.Index

        init(_ bytes: C) {
            self.bytes = bytes
            self.index = bytes.startIndex
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
            var value: T = 0
            for shift in 0..<MemoryLayout<T>.size {
                value |= T(bytes[index]) << (8 * shift)
                index = bytes.index(after: index)
            }
            return value
        }

        mutating func u16() -> UInt16 { integer(UInt16.self) }
        mutating func u32() -> UInt32 { integer(UInt32.self) }
        mutating func u64() -> UInt64 { integer(UInt64.self) }
    }
}

/// Why bytes from the guest's transmit queue are not a packet.
public enum VsockPacketError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer than 44 bytes: no header, so no one to answer.
    case shortHeader(bytes: Int)
    /// `len` is more than the device accepts in one packet.
    case payloadTooLong(header: VsockHeader, limit: Int)
    /// `len` is more than the chain carried after the header.
    case payloadTruncated(header: VsockHeader, available: Int)

    /// The header, when there was one (to answer with RST).
    public var header: VsockHeader? {
        switch self {
        case .shortHeader: return nil
        case .payloadTooLong(let header, _), .payloadTruncated(let header, _): return header
        }
    }

    public var description: String {
        switch self {
        case .shortHeader(let n):
            return "vsock packet of \(n) bytes is shorter than its \(VsockHeader.size)-byte header"
        case let .payloadTooLong(h, limit):
            return "vsock \(h.op) packet claims \(h.length) payload bytes, more than the \(limit) accepted"
        case let .payloadTruncated(h, available):
            return "vsock \(h.op) packet claims \(h.length) payload bytes but carries \(available)"
        }
    }
}

/// One packet: header and payload (empty for every op but RW).
public struct VsockPacket: Equatable, Sendable {
    public var header: VsockHeader
    public var payload: [UInt8]

    public init(header: VsockHeader, payload: [UInt8] = []) {
        self.header = header
        self.payload = payload
    }

    /// Parses what the guest put in one transmit chain.
    /// - Parameters:
    ///   - bytes: the chain's readable bytes (possibly cut at a limit).
    ///   - maxPayload: the largest `len` accepted.
    /// Payload bytes beyond `len` are ignored; so is the payload of an op other than
    /// RW (Linux never sends one).
    public static func parse(_ bytes: [UInt8], maxPayload: Int) throws(VsockPacketError) -> VsockPacket {
        guard let header = VsockHeader(bytes) else { throw .shortHeader(bytes: bytes.count) }
        let length = Int(header.length)
        guard length <= maxPayload else { throw .payloadTooLong(header: header, limit: maxPayload) }
        let available = bytes.count - VsockHeader.size
        guard length <= available else { throw .payloadTruncated(header: header, available: available) }
        guard header.op == .readWrite, length > 0 else { return VsockPacket(header: header) }
        return VsockPacket(header: header, payload: Array(bytes[VsockHeader.size..<VsockHeader.size + length]))
    }

    /// Header and payload as they go on the wire (`len` set from the payload).
    public var bytes: [UInt8] {
        var header = self.header
        header.length = UInt32(payload.count)
        return header.bytes + payload
    }
}
