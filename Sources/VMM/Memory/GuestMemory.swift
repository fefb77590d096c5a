#if canImport(Glibc)
import Glibc
#endif
import CKVM  // only for the atomic 16-bit ring-index helpers

/// A guest physical address (rust-vmm's `GuestAddress`).
public struct GuestAddress: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public static func + (a: Self, offset: UInt64) -> Self { Self(a.rawValue &+ offset) }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

public enum GuestMemoryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An access of `length` bytes at `address` leaves guest RAM.
    case outOfBounds(address: GuestAddress, length: Int)
    case mapFailed(size: Int, errno: Int32)
    /// madvise(MADV_DONTNEED) of `length` bytes at `address` failed.
    case discardFailed(address: GuestAddress, length: Int, errno: Int32)

    public var description: String {
        switch self {
        case let .outOfBounds(address, length):
            return "guest memory access of \(length) bytes at \(address) is outside guest RAM"
        case let .mapFailed(size, code):
            return "mmap `\(size) bytes of guest RAM`: \(String(cString: strerror(code)))"
        case let .discardFailed(address, length, code):
            return "madvise MADV_DONTNEED of \(length) bytes of guest RAM at \(address): \(String(cString: strerror(code)))"
        }
    }
}

/// Guest RAM: one anonymous host mapping for guest physical [0, size).
/// Every access is bounds-checked; raw pointers never leave the closures that use them.
/// Knows nothing of KVM (the builder registers the mapping with the VM).
///
/// Shared by the vCPU and event-loop threads and by the guest itself, which writes
/// it concurrently: readers treat what they read as hostile and copy before use.
public final class GuestMemory: @unchecked Sendable {
    public let size: UInt64
    private let base: UnsafeMutableRawPointer

    /// Huge pages back guest RAM where the host allows (THP "madvise" mode): fewer
    /// host page faults and, on shadow-paging hosts, far fewer shadow page faults.
    static let hugePageSize = 2 << 20

    public init(size: UInt64) throws(GuestMemoryError) {
        precondition(size > 0 && size % 4096 == 0, "guest RAM is a positive number of pages")
        // Map 2 MiB more than needed and trim, so guest physical 0 is 2 MiB aligned
        // in the host and every 2 MiB guest page can be one host huge page.
        let length = Int(size) + Self.hugePageSize
        guard let raw = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              raw != MAP_FAILED else {
            throw .mapFailed(size: Int(size), errno: errno)
        }
        let address = UInt(bitPattern: raw)
        let aligned = (address + UInt(Self.hugePageSize) - 1) & ~UInt(Self.hugePageSize - 1)
        let head = Int(aligned - address)
        if head > 0 { munmap(raw, head) }
        let tail = length - head - Int(size)
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(size)), tail) }
        let mapping = UnsafeMutableRawPointer(bitPattern: aligned)!
        // A core dump of the VMM must never carry guest RAM.
        _ = madvise(mapping, Int(size), MADV_DONTDUMP)
        _ = madvise(mapping, Int(size), MADV_HUGEPAGE)
        self.base = mapping
        self.size = size
    }

    /// Guest RAM mapped copy-on-write (MAP_PRIVATE) from `size` bytes of `file` at
    /// `offset` (page-aligned): a snapshot's memory. Pages are read from the page
    /// cache on first touch and shared by every VM restored from the same file;
    /// a guest write copies the page into this VM alone, and the file never changes.
    /// The mapping keeps the file open; `file` may be closed after this returns.
    public init(privateMappingOf file: OwnedDescriptor, offset: UInt64, size: UInt64) throws(GuestMemoryError) {
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        guard size > 0, size % 4096 == 0, offset % page == 0, offset <= UInt64(Int64.max) - size else {
            throw .mapFailed(size: Int(truncatingIfNeeded: size), errno: EINVAL)
        }
        guard let raw = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, file.rawValue, off_t(offset)),
              raw != MAP_FAILED else {
            throw .mapFailed(size: Int(size), errno: errno)
        }
        // A core dump of the VMM must never carry guest RAM (as for anonymous RAM).
        _ = madvise(raw, Int(size), MADV_DONTDUMP)
        self.base = raw
        self.size = size
    }

    deinit { munmap(base, Int(size)) }

    /// The host address KVM needs for `KVM_SET_USER_MEMORY_REGION`. Only the builder uses it.
    var hostAddress: UnsafeMutableRawPointer { base }

    /// Whether `length` bytes at `address` lie inside guest RAM (no overflow).
    @inline(__always)
    public func contains(_ address: GuestAddress, length: Int) -> Bool {
        guard length >= 0 else { return false }
        let (end, overflow) = address.rawValue.addingReportingOverflow(UInt64(length))
        return !overflow && end <= size
    }

    @inline(__always)
    private func checked(_ address: GuestAddress, _ length: Int) throws(GuestMemoryError) -> UnsafeMutableRawPointer {
        guard contains(address, length: length) else { throw .outOfBounds(address: address, length: length) }
        return base + Int(address.rawValue)
    }

    /// Reads a plain-data value (unaligned allowed).
    public func read<T: BitwiseCopyable>(_ type: T.Type, at address: GuestAddress) throws(GuestMemoryError) -> T {
        try checked(address, MemoryLayout<T>.size).loadUnaligned(as: T.self)
    }

    /// Writes a plain-data value (unaligned allowed).
    public func write<T: BitwiseCopyable>(_ value: T, at address: GuestAddress) throws(GuestMemoryError) {
        try checked(address, MemoryLayout<T>.size).storeBytes(of: value, as: T.self)
    }

    /// Copies `bytes` into guest RAM at `address`.
    public func write(bytes: UnsafeRawBufferPointer, at address: GuestAddress) throws(GuestMemoryError) {
        guard bytes.count > 0 else { return }
        try checked(address, bytes.count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
    }

    public func write(bytes: [UInt8], at address: GuestAddress) throws(GuestMemoryError) {
        let target = try checked(address, bytes.count)
        bytes.withUnsafeBytes { raw in
            if let source = raw.baseAddress { target.copyMemory(from: source, byteCount: raw.count) }
        }
    }

    /// Copies `count` bytes out of guest RAM.
    public func readBytes(at address: GuestAddress, count: Int) throws(GuestMemoryError) -> [UInt8] {
        let source = try checked(address, count)
        return Array(UnsafeRawBufferPointer(start: source, count: count))
    }

    /// Fills `count` bytes with zero.
    public func zero(at address: GuestAddress, count: Int) throws(GuestMemoryError) {
        guard count > 0 else { return }
        memset(try checked(address, count), 0, count)
    }

    /// Lends a bounds-checked window of guest RAM for device I/O (read(2)/write(2) into
    /// guest buffers without a copy). The pointer must not escape `body`.
    public func withBytes<R>(at address: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) -> R) throws(GuestMemoryError) -> R {
        let start = try checked(address, count)
        return body(UnsafeMutableRawBufferPointer(start: start, count: count))
    }

    /// Gives the host pages behind `count` bytes at `address` back to the host
    /// (madvise MADV_DONTNEED): the guest's next access finds a zero page (anonymous
    /// RAM, a boot) or the snapshot file's page (RAM mapped MAP_PRIVATE from a
    /// snapshot). Only for ranges whose content the guest does not rely on (free pages
    /// it reported). `address` and `count` must be host-page aligned.
    public func discard(at address: GuestAddress, count: Int) throws(GuestMemoryError) {
        guard count > 0 else { return }
        let page = UInt64(Self.hostPageSize)
        guard address.rawValue % page == 0, UInt64(count) % page == 0 else {
            throw .discardFailed(address: address, length: count, errno: EINVAL)
        }
        let start = try checked(address, count)
        guard madvise(start, count, MADV_DONTNEED) == 0 else {
            throw .discardFailed(address: address, length: count, errno: errno)
        }
    }

    /// The host's page size (4 KiB on x86-64).
    public static let hostPageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// An atomic, acquire-ordered 16-bit load (virtqueue ring indices).
    public func loadIndex(at address: GuestAddress) throws(GuestMemoryError) -> UInt16 {
        guard address.rawValue % 2 == 0 else { throw .outOfBounds(address: address, length: 2) }
        return ckvm_load_u16(try checked(address, 2))
    }

    /// An atomic, release-ordered 16-bit store (virtqueue used index).
    public func storeIndex(_ value: UInt16, at address: GuestAddress) throws(GuestMemoryError) {
        guard address.rawValue % 2 == 0 else { throw .outOfBounds(address: address, length: 2) }
        ckvm_store_u16(try checked(address, 2), value)
    }
}
