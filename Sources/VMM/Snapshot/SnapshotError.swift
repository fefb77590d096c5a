/// Why a snapshot could not be written, loaded or restored. Every case names what
/// differed, so `sm-runc --debug` can say why it booted instead.
public enum SnapshotError: Error, CustomStringConvertible, Sendable {
    case io(SystemCallError)
    case notASnapshot(path: String)
    case unsupportedFormat(path: String, found: UInt32, supported: UInt32)
    case truncated(path: String, size: UInt64, expected: UInt64)
    case checksumMismatch(path: String)
    case vmmMismatch(found: String, expected: String)
    case kernelMismatch(found: String, expected: String)
    case agentMismatch(found: String, expected: String)
    case vcpuCountMismatch(found: Int, expected: Int)
    case memorySizeMismatch(found: UInt64, expected: UInt64)
    /// A length, count or offset out of bounds, or a section missing or repeated.
    case malformed(String)
    /// The snapshot holds state this host's KVM cannot take (e.g. XSAVE without KVM_CAP_XSAVE).
    case unsupported(String)
    case invalidArgument(String)
    case memory(GuestMemoryError)

    public var description: String {
        switch self {
        case .io(let error): return "snapshot: \(error)"
        case .notASnapshot(let path): return "\(path) is not an sm-runc snapshot (bad magic)"
        case let .unsupportedFormat(path, found, supported):
            return "\(path) is snapshot format \(found), this VMM reads format \(supported)"
        case let .truncated(path, size, expected):
            return "snapshot \(path) is \(size) bytes, its header says \(expected): truncated or overwritten"
        case .checksumMismatch(let path): return "snapshot \(path): checksum of header and state does not match (corrupted)"
        case let .vmmMismatch(found, expected): return "snapshot was made by VMM \(found), this is \(expected)"
        case let .kernelMismatch(found, expected): return "snapshot was made with kernel \(found), this kernel is \(expected)"
        case let .agentMismatch(found, expected): return "snapshot was made with agent \(found), this agent is \(expected)"
        case let .vcpuCountMismatch(found, expected): return "snapshot has \(found) vCPUs, this machine wants \(expected)"
        case let .memorySizeMismatch(found, expected): return "snapshot has \(found) bytes of guest RAM, this machine wants \(expected)"
        case .malformed(let what): return "malformed snapshot: \(what)"
        case .unsupported(let what): return "snapshot cannot be restored on this host: \(what)"
        case .invalidArgument(let what): return "snapshot: \(what)"
        case .memory(let error): return "snapshot memory: \(error)"
        }
    }
}

/// Little-endian encoding of snapshot sections. KVM structures are stored as their
/// raw bytes with a length prefix, so a size change between kernels' headers is
/// refused on load instead of misread.
struct SnapshotWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }

    /// A length-prefixed blob.
    mutating func blob(_ data: [UInt8]) {
        u32(UInt32(data.count))
        bytes += data
    }

    /// A plain-data KVM structure, length-prefixed.
    mutating func raw<T: BitwiseCopyable>(_ value: T) {
        u32(UInt32(MemoryLayout<T>.size))
        withUnsafeBytes(of: value) { bytes += $0 }
    }

    /// One that a VM or vCPU may lack (a PIT, XCRs): a 0/1 flag, then the structure.
    mutating func optionalRaw<T: BitwiseCopyable>(_ value: T?) {
        u8(value == nil ? 0 : 1)
        if let value { raw(value) }
    }
}

/// Reads what `SnapshotWriter` wrote; every length and count is checked against
/// the bytes left and a caller-given maximum before anything is allocated.
struct SnapshotReader {
    private let bytes: [UInt8]
    private var offset = 0
    let what: String

    init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    private mutating func take(_ count: Int) throws(SnapshotError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - offset else {
            throw .malformed("\(what): wants \(count) bytes at offset \(offset), \(bytes.count - offset) left")
        }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func u8() throws(SnapshotError) -> UInt8 { try take(1).first ?? 0 }

    mutating func u32() throws(SnapshotError) -> UInt32 {
        try take(4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }

    mutating func u64() throws(SnapshotError) -> UInt64 {
        try take(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    /// A count, refused above `maximum`.
    mutating func count(maximum: Int, of name: String) throws(SnapshotError) -> Int {
        let value = try u32()
        guard value <= maximum else { throw .malformed("\(what): \(value) \(name), at most \(maximum)") }
        return Int(value)
    }

    mutating func blob(maximum: Int, of name: String) throws(SnapshotError) -> [UInt8] {
        let length = try count(maximum: maximum, of: "bytes of \(name)")
        return Array(try take(length))
    }

    mutating func raw<T: BitwiseCopyable>(_ type: T.Type, _ name: String) throws(SnapshotError) -> T {
        let length = try u32()
        guard length == MemoryLayout<T>.size else {
            throw .malformed("\(what): \(name) is \(length) bytes, this VMM's is \(MemoryLayout<T>.size)")
        }
        return try take(Int(length)).withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    /// What `SnapshotWriter.optionalRaw` wrote.
    mutating func optionalRaw<T: BitwiseCopyable>(_ type: T.Type, _ name: String) throws(SnapshotError) -> T? {
        switch try u8() {
        case 0: return nil
        case 1: return try raw(type, name)
        case let flag: throw .malformed("\(what): \(name) flag \(flag)")
        }
    }

    /// Refuses trailing bytes.
    func finish() throws(SnapshotError) {
        guard offset == bytes.count else { throw .malformed("\(what): \(bytes.count - offset) unexpected trailing bytes") }
    }
}
