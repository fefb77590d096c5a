#if canImport(Glibc)
import Glibc
#endif

/// What the file server needs from Linux that Swift's Glibc module does not import:
/// it is built without `_GNU_SOURCE`, so `O_PATH`, `AT_EMPTY_PATH`, `SEEK_DATA`,
/// `renameat2`, `fallocate`, `syncfs`, the xattr calls and `getdents64` are
/// missing, and
/// `syscall(2)` is variadic. The constants are the x86_64/generic Linux values; the
/// functions are glibc's own exported symbols (glibc >= 2.30), resolved once with
/// `dlsym` and called through their exact C prototypes.
///
/// There is no `openat2` wrapper in glibc and `syscall` cannot be called from Swift,
/// so `RESOLVE_BENEATH` is not used: instead the server never resolves a guest path
/// of more than one component. Every call is `openat`/`fstatat`/`mknodat`/...
/// relative to the parent inode's `O_PATH` fd with a single name (no '/', never
/// "." or ".."), with `O_NOFOLLOW` / `AT_SYMLINK_NOFOLLOW`, so neither `..` nor a
/// symlink (inside the name or swapped in by the host) can lead outside the share.
enum Linux {
    static let O_PATH: Int32 = 0o10_000_000
    static let O_NOATIME: Int32 = 0o1_000_000
    static let O_DIRECT: Int32 = 0o40_000
    static let AT_EMPTY_PATH: Int32 = 0x1000
    static let SEEK_DATA: Int32 = 3
    static let SEEK_HOLE: Int32 = 4
    static let UTIME_NOW: Int = (1 << 30) - 1
    static let UTIME_OMIT: Int = (1 << 30) - 2
    static let RENAME_NOREPLACE: UInt32 = 1 << 0
    static let RENAME_EXCHANGE: UInt32 = 1 << 1
    static let XATTR_CREATE: Int32 = 1
    static let XATTR_REPLACE: Int32 = 2

    typealias Renameat2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32
    typealias Fallocate = @convention(c) (Int32, Int32, Int, Int) -> Int32
    typealias Getxattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
    typealias Setxattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias Listxattr = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
    typealias Removexattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32
    typealias Getdents64 = @convention(c) (Int32, UnsafeMutableRawPointer?, Int) -> Int
    typealias Syncfs = @convention(c) (Int32) -> Int32

    /// `int renameat2(int, const char *, int, const char *, unsigned int)`
    static let renameat2: Renameat2? = symbol("renameat2")
    /// `int fallocate(int fd, int mode, off_t offset, off_t len)` (64-bit off_t on x86_64)
    static let fallocate: Fallocate? = symbol("fallocate")
    /// `ssize_t getxattr(const char *path, const char *name, void *value, size_t size)`
    static let getxattr: Getxattr? = symbol("getxattr")
    /// `int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)`
    static let setxattr: Setxattr? = symbol("setxattr")
    /// `ssize_t listxattr(const char *path, char *list, size_t size)`
    static let listxattr: Listxattr? = symbol("listxattr")
    /// `int removexattr(const char *path, const char *name)`
    static let removexattr: Removexattr? = symbol("removexattr")
    /// `ssize_t getdents64(int fd, void *dirp, size_t count)`
    static let getdents64: Getdents64? = symbol("getdents64")
    /// `int syncfs(int fd)`
    static let syncfs: Syncfs? = symbol("syncfs")

    private static func symbol<F>(_ name: String) -> F? {
        // RTLD_DEFAULT is ((void *) 0) in glibc: search the process's global symbols.
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(address, to: F.self)
    }

    /// The path through which a new open of an `O_PATH` fd's inode is made: the
    /// magic link refers to the inode itself, not to whatever its old path holds now.
    /// (Reopening needs it: `openat(fd, "", AT_EMPTY_PATH)` does not exist for open,
    /// and chmod / utimensat / truncate / the xattr calls refuse `O_PATH` fds.)
    static func procPath(_ fd: OwnedDescriptor) -> String { "/proc/self/fd/\(fd.rawValue)" }
}

/// `check` for the file server: a failed call becomes the errno the guest gets,
/// with a message naming the call and its argument.
@discardableResult
@inline(__always)
func fsCall(_ call: @autoclosure () -> String, _ argument: @autoclosure () -> String,
            _ body: () -> Int32) throws(FuseError) -> Int32 {
    do { return try check(call(), argument(), body) } catch { throw FuseError(error) }
}

/// `fsCall` for calls returning `ssize_t`.
@discardableResult
@inline(__always)
func fsCallSize(_ call: @autoclosure () -> String, _ argument: @autoclosure () -> String,
                _ body: () -> Int) throws(FuseError) -> Int {
    do { return try checkSize(call(), argument(), body) } catch { throw FuseError(error) }
}

/// A GNU function `dlsym` did not find: the operation is not available on this libc.
func missing(_ function: String) -> FuseError {
    FuseError(ENOSYS, "\(function): not exported by this C library")
}
