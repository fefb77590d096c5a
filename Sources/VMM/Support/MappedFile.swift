#if canImport(Glibc)
import Glibc
#endif

/// A read-only, private mapping of a whole file (the kernel, an initrd): loaded into
/// guest RAM with one copy, straight from the page cache.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?

    public init(_ path: String, what: String) throws(MachineError) {
        self.path = path
        let fd: OwnedDescriptor
        do { fd = try OwnedDescriptor.open(path, flags: O_RDONLY) } catch { throw .readFailed(what: what, path: path, error) }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else {
            throw .readFailed(what: what, path: path, SystemCallError(call: "fstat", argument: path, errno: .init(rawValue: errno)))
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw .readFailed(what: what, path: path, SystemCallError(call: "open", argument: path, errno: .init(rawValue: EISDIR)))
        }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd.rawValue, 0), mapping != MAP_FAILED else {
            throw .readFailed(what: what, path: path, SystemCallError(call: "mmap", argument: path, errno: .init(rawValue: errno)))
        }
        base = UnsafeRawPointer(mapping)
    }

    deinit { if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) } }

    /// Lends the file's bytes; the pointer must not escape `body`.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: size))
    }
}
