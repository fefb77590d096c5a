#if canImport(Glibc)
import Glibc
#endif

// Reading guest messages and writing replies: little-endian fields at the byte
// offsets of <linux/fuse.h>, every read length-checked first.

/// Reads little-endian fields from a byte range, checking every length first.
struct FuseReader {
    private let bytes: [UInt8]
    private(set) var offset: Int
    let end: Int
    /// Names the message in errors ("FUSE_READ").
    let what: String

    init(_ bytes: [UInt8], from start: Int, to end: Int, what: String) {
        precondition(0 <= start && start <= end && end <= bytes.count)
        self.bytes = bytes
        self.offset = start
        self.end = end
        self.what = what
    }

    var remaining: Int { end - offset }

    /// Checks that a `size`-byte argument structure is present.
    func need(_ size: Int, _ structure: String) throws(FuseError) {
        guard remaining >= size else {
            throw .invalid("\(what): \(remaining) bytes of arguments, \(structure) needs \(size)")
        }
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type) throws(FuseError) -> T {
        let size = MemoryLayout<T>.size
        try need(size, "a \(size * 8)-bit field")
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }

    mutating func u16() throws(FuseError) -> UInt16 { try load(UInt16.self) }
    mutating func u32() throws(FuseError) -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws(FuseError) -> UInt64 { try load(UInt64.self) }

    mutating func skip(_ count: Int) throws(FuseError) {
        try need(count, "\(count) bytes")
        offset += count
    }

    /// The next `count` bytes.
    mutating func take(_ count: Int, _ what: String) throws(FuseError) -> ArraySlice<UInt8> {
        try need(count, what)
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    /// A NUL-terminated string that must end inside the message, of at most `max` bytes.
    mutating func cString(_ what: String, max: Int) throws(FuseError) -> ArraySlice<UInt8> {
        guard let nul = bytes[offset..<end].firstIndex(of: 0) else {
            throw .invalid("\(self.what): \(what) is not NUL-terminated inside the message")
        }
        let value = bytes[offset..<nul]
        guard value.count <= max else {
            throw FuseError(ENAMETOOLONG, "\(self.what): \(what) of \(value.count) bytes exceeds \(max)")
        }
        offset = nul + 1
        return value
    }

    /// A single path component: NUL-terminated, at most `max` bytes, no '/', not empty.
    mutating func name(_ what: String, max: Int) throws(FuseError) -> FuseName {
        let raw = try cString(what, max: max)
        guard let name = FuseName(raw) else {
            throw .invalid("\(self.what): \(what) `\(String(decoding: raw, as: UTF8.self))` is empty or contains '/'")
        }
        return name
    }
}

/// Builds a reply: a 16-byte fuse_out_header (filled in by `finish`) then the payload,
/// in one buffer, so file data is read straight into it.
struct FuseWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int = 0) {
        bytes = [UInt8](repeating: 0, count: FuseConstant.outHeaderSize)
        bytes.reserveCapacity(FuseConstant.outHeaderSize + capacity)
    }

    var payloadCount: Int { bytes.count - FuseConstant.outHeaderSize }

    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }
    mutating func append<C: Collection>(_ data: C) where C.Element == UInt8 { bytes.append(contentsOf: data) }

    /// Pads with zeros to a multiple of 8 bytes of payload (FUSE_DIRENT_ALIGN).
    mutating func alignPayload() { zeros((8 - payloadCount % 8) % 8) }

    /// Appends up to `count` bytes produced by `fill`, which returns how many it wrote
    /// (or -1, kept for the caller to inspect errno). The pointer must not escape `fill`.
    mutating func append(upTo count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        let produced = bytes.withUnsafeMutableBytes { raw in
            fill(UnsafeMutableRawBufferPointer(rebasing: raw[start..<start + count]))
        }
        bytes.removeLast(count - min(max(produced, 0), count))
        return produced
    }

    /// Fills in the header: length, error (0 or a negative errno) and the request's unique.
    mutating func finish(unique: UInt64, error: Int32 = 0) -> [UInt8] {
        let length = UInt32(bytes.count)
        let negated = UInt32(bitPattern: -error)
        for i in 0..<4 {
            bytes[i] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(i)))
            bytes[4 + i] = UInt8(truncatingIfNeeded: negated >> (8 * UInt32(i)))
        }
        for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: unique >> (8 * UInt64(i))) }
        return bytes
    }

    /// A header-only error reply.
    static func error(unique: UInt64, _ errno: Int32) -> [UInt8] {
        var writer = FuseWriter()
        return writer.finish(unique: unique, error: errno)
    }
}

extension FuseWriter {
    /// struct fuse_attr (88 bytes) from a host stat.
    mutating func attr(_ st: stat) {
        u64(UInt64(st.st_ino))
        u64(UInt64(bitPattern: Int64(st.st_size)))
        u64(UInt64(bitPattern: Int64(st.st_blocks)))
        u64(UInt64(bitPattern: Int64(st.st_atim.tv_sec)))
        u64(UInt64(bitPattern: Int64(st.st_mtim.tv_sec)))
        u64(UInt64(bitPattern: Int64(st.st_ctim.tv_sec)))
        u32(UInt32(truncatingIfNeeded: st.st_atim.tv_nsec))
        u32(UInt32(truncatingIfNeeded: st.st_mtim.tv_nsec))
        u32(UInt32(truncatingIfNeeded: st.st_ctim.tv_nsec))
        u32(UInt32(st.st_mode))
        u32(UInt32(truncatingIfNeeded: st.st_nlink))
        u32(st.st_uid)
        u32(st.st_gid)
        u32(UInt32(truncatingIfNeeded: st.st_rdev))   // the kernel's new_decode_dev layout for 32-bit values
        u32(UInt32(truncatingIfNeeded: st.st_blksize))
        u32(0)                                          // flags
    }

    /// struct fuse_entry_out (128 bytes). A nodeid of 0 with a zeroed stat is the
    /// READDIRPLUS "no entry" form.
    mutating func entry(nodeid: UInt64, _ st: stat, timeout: FuseTimeout) {
        u64(nodeid)
        u64(0)                                          // generation: nodeids are never reused
        u64(timeout.seconds)
        u64(timeout.seconds)
        u32(timeout.nanoseconds)
        u32(timeout.nanoseconds)
        attr(st)
    }

    /// struct fuse_attr_out (104 bytes).
    mutating func attrOut(_ st: stat, timeout: FuseTimeout) {
        u64(timeout.seconds)
        u32(timeout.nanoseconds)
        u32(0)
        attr(st)
    }

    /// struct fuse_open_out (16 bytes).
    mutating func openOut(fh: UInt64, flags: UInt32 = 0) {
        u64(fh)
        u32(flags)
        u32(0)
    }
}

/// How long the guest may cache names and attributes. The host may change the share
/// behind the guest's back (it is the bundle's rootfs), so this stays short.
public struct FuseTimeout: Sendable, Equatable {
    public var seconds: UInt64
    public var nanoseconds: UInt32
    public init(seconds: UInt64, nanoseconds: UInt32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
}
