#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// What the file server needs from Linux that Swift's Glibc module does not import:
/// it is built without `_GNU_SOURCE`, so `O_PATH`, `AT_EMPTY_PATH`, `SEEK_DATA`,
/// `renameat2`, `fallocate`, `syncfs`, the xattr calls and `getdents64` are
/// missing, and `syscall(2)` is variadic. The constants are the x86_64/generic Linux
/// values; the functions are glibc's (>= 2.30), reached through CKVM's C wrappers.
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

    // The GNU calls, through thin C wrappers in CKVM (declared there without
    // _GNU_SOURCE, which must not reach Swift's view of the C library).
    static let renameat2 = ckvm_renameat2
    static let fallocate = ckvm_fallocate
    static let getxattr = ckvm_getxattr
    static let setxattr = ckvm_setxattr
    static let listxattr = ckvm_listxattr
    static let removexattr = ckvm_removexattr
    static let getdents64 = ckvm_getdents64
    static let syncfs = ckvm_syncfs

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
