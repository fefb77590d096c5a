#if canImport(Glibc)
import Glibc
#endif

// The FUSE wire format (<linux/fuse.h>, protocol 7.38), defined here in Swift:
// CKVM does not carry the FUSE header, and guest bytes are never rebound to C
// structs anyway. Every structure is little-endian with the byte offsets of the
// kernel header; readers check lengths before every field.

/// A FUSE opcode (`enum fuse_opcode`). A struct, so an unknown value survives parsing
/// and gets ENOSYS instead of being lost.
public struct FuseOpcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ value: UInt32) { rawValue = value }

    public static let lookup = Self(1), forget = Self(2), getattr = Self(3), setattr = Self(4)
    public static let readlink = Self(5), symlink = Self(6), mknod = Self(8), mkdir = Self(9)
    public static let unlink = Self(10), rmdir = Self(11), rename = Self(12), link = Self(13)
    public static let open = Self(14), read = Self(15), write = Self(16), statfs = Self(17)
    public static let release = Self(18), fsync = Self(20), setxattr = Self(21), getxattr = Self(22)
    public static let listxattr = Self(23), removexattr = Self(24), flush = Self(25), initialize = Self(26)
    public static let opendir = Self(27), readdir = Self(28), releasedir = Self(29), fsyncdir = Self(30)
    public static let getlk = Self(31), setlk = Self(32), setlkw = Self(33), access = Self(34)
    public static let create = Self(35), interrupt = Self(36), bmap = Self(37), destroy = Self(38)
    public static let ioctl = Self(39), poll = Self(40), notifyReply = Self(41), batchForget = Self(42)
    public static let fallocate = Self(43), readdirplus = Self(44), rename2 = Self(45), lseek = Self(46)
    public static let copyFileRange = Self(47), setupMapping = Self(48), removeMapping = Self(49)
    public static let syncfs = Self(50), tmpfile = Self(51)

    static let names: [UInt32: String] = [
        1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK", 6: "SYMLINK", 8: "MKNOD",
        9: "MKDIR", 10: "UNLINK", 11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ",
        16: "WRITE", 17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR", 22: "GETXATTR",
        23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 26: "INIT", 27: "OPENDIR", 28: "READDIR",
        29: "RELEASEDIR", 30: "FSYNCDIR", 31: "GETLK", 32: "SETLK", 33: "SETLKW", 34: "ACCESS",
        35: "CREATE", 36: "INTERRUPT", 37: "BMAP", 38: "DESTROY", 39: "IOCTL", 40: "POLL",
        41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE", 44: "READDIRPLUS", 45: "RENAME2",
        46: "LSEEK", 47: "COPY_FILE_RANGE", 48: "SETUPMAPPING", 49: "REMOVEMAPPING", 50: "SYNCFS",
        51: "TMPFILE",
    ]

    public var description: String { "FUSE_" + (Self.names[rawValue] ?? "opcode \(rawValue)") }
}

/// Constants of <linux/fuse.h> the server uses.
public enum FuseConstant {
    public static let kernelMajor: UInt32 = 7
    /// The protocol minor this server implements (the host header's, 7.38).
    public static let kernelMinor: UInt32 = 38
    /// The oldest minor we accept: virtio-fs itself arrived with 7.31 (Linux 5.4).
    public static let oldestMinor: UInt32 = 31
    public static let rootID: UInt64 = 1

    public static let inHeaderSize = 40      // struct fuse_in_header
    public static let outHeaderSize = 16     // struct fuse_out_header
    public static let attrSize = 88          // struct fuse_attr
    public static let entryOutSize = 128     // struct fuse_entry_out
    public static let attrOutSize = 104      // struct fuse_attr_out
    public static let openOutSize = 16       // struct fuse_open_out
    public static let initOutSize = 64       // struct fuse_init_out
    public static let kstatfsSize = 80       // struct fuse_kstatfs
    public static let direntHeaderSize = 24  // offsetof(struct fuse_dirent, name)

    // fuse_init_in / fuse_init_out flags.
    /// fuse_open_out.open_flags: keep the file's page cache across opens (else every
    /// open, an exec too, drops it and the guest reads the file again). Stale data is
    /// still noticed: with FUSE_AUTO_INVAL_DATA the guest drops the cache when a
    /// refreshed attribute shows a new mtime or size.
    public static let fopenKeepCache: UInt32 = 1 << 1
    public static let asyncRead: UInt32 = 1 << 0
    public static let atomicOTrunc: UInt32 = 1 << 3
    public static let exportSupport: UInt32 = 1 << 4
    public static let bigWrites: UInt32 = 1 << 5
    public static let dontMask: UInt32 = 1 << 6
    public static let autoInvalData: UInt32 = 1 << 12
    public static let doReaddirplus: UInt32 = 1 << 13
    public static let readdirplusAuto: UInt32 = 1 << 14
    public static let parallelDirops: UInt32 = 1 << 18
    public static let maxPagesFlag: UInt32 = 1 << 22
    public static let setxattrExt: UInt32 = 1 << 29
    public static let initExt: UInt32 = 1 << 30

    // fuse_setattr_in.valid
    public static let setattrMode: UInt32 = 1 << 0, setattrUID: UInt32 = 1 << 1, setattrGID: UInt32 = 1 << 2
    public static let setattrSize: UInt32 = 1 << 3, setattrATime: UInt32 = 1 << 4, setattrMTime: UInt32 = 1 << 5
    public static let setattrFH: UInt32 = 1 << 6, setattrATimeNow: UInt32 = 1 << 7, setattrMTimeNow: UInt32 = 1 << 8

    public static let getattrFH: UInt32 = 1 << 0          // fuse_getattr_in.getattr_flags
    public static let fsyncDataSync: UInt32 = 1 << 0       // fuse_fsync_in.fsync_flags
}

/// Protocol limits: what one guest request may carry. Everything larger is refused
/// before any allocation depends on it.
public struct FuseLimits: Sendable {
    /// Largest WRITE payload (and READ / READDIR size) accepted.
    public var maxWrite: Int = 1 << 20
    /// Largest name component (NAME_MAX).
    public var maxName: Int = 255
    /// Largest symlink target including its NUL (PATH_MAX).
    public var maxPath: Int = 4096
    /// Largest extended attribute value (XATTR_SIZE_MAX) and list (XATTR_LIST_MAX).
    public var maxXattrSize: Int = 64 << 10
    /// Largest extended attribute name (XATTR_NAME_MAX).
    public var maxXattrName: Int = 255
    /// Largest BATCH_FORGET entry count one message may carry.
    public var maxBatchForget: Int = 1 << 16
    /// How many pages one request may span (FUSE_MAX_PAGES); the guest clamps it to its
    /// request queue size.
    public var maxPages: UInt16 = 256

    public init() {}

    /// The largest message accepted: header, the largest argument block (WRITE's 40
    /// bytes, or SETXATTR's name and value), and the payload.
    public var maxRequest: Int {
        FuseConstant.inHeaderSize + max(40 + maxWrite, 8 + maxXattrName + 1 + maxXattrSize, 16 * maxBatchForget + 8)
    }
}

/// Why a request failed, as the errno the guest gets, with a message naming the call
/// and its argument (for logs).
public struct FuseError: Error, CustomStringConvertible, Sendable, Equatable {
    public let errno: Int32
    public let message: String

    public init(_ errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }

    init(_ error: SystemCallError) {
        self.init(error.errno.rawValue, error.description)
    }

    public var description: String { "\(message): \(String(cString: strerror(errno)))" }

    static func invalid(_ message: String) -> FuseError { FuseError(EINVAL, message) }
}

/// One path component from the guest: raw bytes (Linux names need not be UTF-8),
/// no NUL, no '/', kept NUL-terminated for the C calls.
public struct FuseName: Hashable, Sendable, CustomStringConvertible {
    /// The bytes followed by one NUL.
    private let terminated: [UInt8]

    public var bytes: ArraySlice<UInt8> { terminated.dropLast() }
    public var count: Int { terminated.count - 1 }
    public var isDot: Bool { terminated == [0x2e, 0] }
    public var isDotDot: Bool { terminated == [0x2e, 0x2e, 0] }

    /// Fails on an empty name, an embedded NUL or '/'.
    public init?<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        var terminated = Array(bytes)
        guard !terminated.isEmpty, !terminated.contains(0), !terminated.contains(0x2f) else { return nil }
        terminated.append(0)
        self.terminated = terminated
    }

    public init?(_ string: String) { self.init(Array(string.utf8)) }

    /// Lends the NUL-terminated name; the pointer must not escape `body`.
    public func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        terminated.withUnsafeBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}
