#if canImport(Glibc)
import Glibc
#endif

/// struct fuse_in_header (40 bytes).
public struct FuseInHeader: Sendable, Equatable {
    public var length: UInt32
    public var opcode: FuseOpcode
    public var unique: UInt64
    public var nodeid: UInt64
    public var uid: UInt32
    public var gid: UInt32
    public var pid: UInt32
    /// Length of the extensions after the arguments, in 8-byte units (7.36+).
    public var totalExtensionLength: UInt16
}

/// struct fuse_setattr_in: what SETATTR changes (`valid`) and the new values.
public struct FuseSetattr: Sendable, Equatable {
    public var valid: UInt32
    public var fh: UInt64
    public var size: UInt64
    public var atime: UInt64, mtime: UInt64
    public var atimensec: UInt32, mtimensec: UInt32
    public var mode: UInt32
    public var uid: UInt32, gid: UInt32

    func has(_ flag: UInt32) -> Bool { valid & flag != 0 }
}

/// One request's operation and its arguments, parsed and bounds-checked.
public enum FuseOperation: Sendable, Equatable {
    case initialize(major: UInt32, minor: UInt32, maxReadahead: UInt32, flags: UInt32)
    case destroy
    case lookup(FuseName)
    case forget(count: UInt64)
    case batchForget([ForgetOne])
    case getattr(fh: UInt64?)
    case setattr(FuseSetattr)
    case readlink
    case symlink(name: FuseName, target: [UInt8])
    case mknod(name: FuseName, mode: UInt32, rdev: UInt32)
    case mkdir(name: FuseName, mode: UInt32)
    case unlink(FuseName)
    case rmdir(FuseName)
    case rename(from: FuseName, toDirectory: UInt64, to: FuseName, flags: UInt32)
    case link(node: UInt64, name: FuseName)
    case open(flags: UInt32)
    case read(fh: UInt64, offset: UInt64, size: UInt32)
    case write(fh: UInt64, offset: UInt64, data: ArraySlice<UInt8>)
    case statfs
    case release(fh: UInt64)
    case fsync(fh: UInt64, dataOnly: Bool)
    case flush(fh: UInt64)
    case setxattr(name: [UInt8], value: ArraySlice<UInt8>, flags: UInt32)
    case getxattr(name: [UInt8], size: UInt32)
    case listxattr(size: UInt32)
    case removexattr(name: [UInt8])
    case opendir(flags: UInt32)
    case readdir(fh: UInt64, offset: UInt64, size: UInt32, plus: Bool)
    case releasedir(fh: UInt64)
    case fsyncdir(fh: UInt64, dataOnly: Bool)
    case access(mask: UInt32)
    case create(name: FuseName, flags: UInt32, mode: UInt32)
    case interrupt(unique: UInt64)
    case lseek(fh: UInt64, offset: UInt64, whence: UInt32)
    case fallocate(fh: UInt64, offset: UInt64, length: UInt64, mode: UInt32)
    case syncfs
    /// A known or unknown opcode this server does not implement: ENOSYS.
    case unsupported(FuseOpcode)

    public struct ForgetOne: Sendable, Equatable {
        public var nodeid: UInt64
        public var count: UInt64
    }

    /// Whether the operation changes the share (refused with EROFS on a read-only
    /// one; OPEN for writing is checked by the file system, which sees the flags).
    public var modifiesShare: Bool {
        switch self {
        case .setattr, .symlink, .mknod, .mkdir, .unlink, .rmdir, .rename, .link, .write,
             .setxattr, .removexattr, .create, .fallocate:
            return true
        default:
            return false
        }
    }

    /// FORGET, BATCH_FORGET and INTERRUPT get no reply.
    public var expectsReply: Bool {
        switch self {
        case .forget, .batchForget, .interrupt: return false
        default: return true
        }
    }
}

public struct FuseRequest: Sendable, Equatable {
    public var header: FuseInHeader
    public var operation: FuseOperation
}

/// What the parser made of a message.
public enum FuseParseResult: Sendable, Equatable {
    /// A well-formed request.
    case request(FuseRequest)
    /// The header was readable but the message is not acceptable: reply with `error`
    /// (unless the opcode never gets a reply).
    case refused(FuseInHeader, FuseError)
    /// Not even a header: complete the chain with nothing written.
    case unreadable(String)
}

/// Parses FUSE requests from the bytes of a descriptor chain's readable buffers.
/// Guest bytes are hostile: every length is checked before use, names must be
/// NUL-terminated inside the message, and sizes are capped by `FuseLimits`.
public struct FuseParser: Sendable {
    public let limits: FuseLimits

    public init(limits: FuseLimits = FuseLimits()) { self.limits = limits }

    /// - Parameters:
    ///   - bytes: what was copied out of the chain (at most `limits.maxRequest` bytes).
    ///   - arrivedLength: how many readable bytes the chain really had.
    public func parse(_ bytes: [UInt8], arrivedLength: Int) -> FuseParseResult {
        let header: FuseInHeader
        do { header = try Self.header(bytes) } catch { return .unreadable(error.message) }
        let length = Int(header.length)
        guard length <= limits.maxRequest else {
            return .refused(header, FuseError(E2BIG, "\(header.opcode): message of \(length) bytes exceeds \(limits.maxRequest)"))
        }
        guard length == arrivedLength, length <= bytes.count else {
            return .refused(header, .invalid("\(header.opcode): header says \(length) bytes, \(arrivedLength) arrived"))
        }
        guard length >= FuseConstant.inHeaderSize else {
            return .refused(header, .invalid("\(header.opcode): header length \(length) is shorter than the header"))
        }
        let extensions = Int(header.totalExtensionLength) * 8
        guard extensions <= length - FuseConstant.inHeaderSize else {
            return .refused(header, .invalid("\(header.opcode): \(extensions) bytes of extensions exceed the message"))
        }
        var arguments = FuseReader(bytes, from: FuseConstant.inHeaderSize, to: length - extensions,
                                   what: header.opcode.description)
        do {
            let operation = try parseOperation(header.opcode, &arguments)
            return .request(FuseRequest(header: header, operation: operation))
        } catch {
            return .refused(header, error)
        }
    }

    /// struct fuse_in_header, from the first 40 bytes.
    static func header(_ bytes: [UInt8]) throws(FuseError) -> FuseInHeader {
        guard bytes.count >= FuseConstant.inHeaderSize else {
            throw .invalid("FUSE message of \(bytes.count) bytes is shorter than fuse_in_header (40)")
        }
        var r = FuseReader(bytes, from: 0, to: FuseConstant.inHeaderSize, what: "fuse_in_header")
        return FuseInHeader(
            length: try r.u32(), opcode: FuseOpcode(try r.u32()), unique: try r.u64(), nodeid: try r.u64(),
            uid: try r.u32(), gid: try r.u32(), pid: try r.u32(), totalExtensionLength: try r.u16())
    }

    private func parseOperation(_ opcode: FuseOpcode, _ r: inout FuseReader) throws(FuseError) -> FuseOperation {
        switch opcode {
        case .initialize:
            // fuse_init_in: 16 bytes before 7.36, 64 after (flags2 and unused words we ignore).
            try r.need(16, "fuse_init_in")
            return .initialize(major: try r.u32(), minor: try r.u32(), maxReadahead: try r.u32(), flags: try r.u32())
        case .destroy: return .destroy
        case .lookup: return .lookup(try r.name("name", max: limits.maxName))
        case .forget:
            try r.need(8, "fuse_forget_in")
            return .forget(count: try r.u64())
        case .batchForget:
            try r.need(8, "fuse_batch_forget_in")
            let count = Int(try r.u32())
            try r.skip(4)
            guard count <= limits.maxBatchForget else {
                throw FuseError(E2BIG, "FUSE_BATCH_FORGET: \(count) entries exceed \(limits.maxBatchForget)")
            }
            try r.need(16 * count, "\(count) fuse_forget_one")
            var entries: [FuseOperation.ForgetOne] = []
            entries.reserveCapacity(count)
            for _ in 0..<count { entries.append(.init(nodeid: try r.u64(), count: try r.u64())) }
            return .batchForget(entries)
        case .getattr:
            try r.need(16, "fuse_getattr_in")
            let flags = try r.u32()
            try r.skip(4)
            let fh = try r.u64()
            return .getattr(fh: flags & FuseConstant.getattrFH != 0 ? fh : nil)
        case .setattr:
            try r.need(88, "fuse_setattr_in")
            let valid = try r.u32()
            try r.skip(4)
            let fh = try r.u64(), size = try r.u64()
            try r.skip(8)                                   // lock_owner
            let atime = try r.u64(), mtime = try r.u64()
            try r.skip(8)                                   // ctime
            let atimensec = try r.u32(), mtimensec = try r.u32()
            try r.skip(4)                                   // ctimensec
            let mode = try r.u32()
            try r.skip(4)
            let uid = try r.u32(), gid = try r.u32()
            return .setattr(FuseSetattr(valid: valid, fh: fh, size: size, atime: atime, mtime: mtime,
                                        atimensec: atimensec, mtimensec: mtimensec, mode: mode, uid: uid, gid: gid))
        case .readlink: return .readlink
        case .symlink:
            let name = try r.name("name", max: limits.maxName)
            let target = try r.cString("symlink target", max: limits.maxPath - 1)
            guard !target.isEmpty else { throw FuseError(ENOENT, "FUSE_SYMLINK: empty target") }
            return .symlink(name: name, target: Array(target))
        case .mknod:
            try r.need(16, "fuse_mknod_in")
            let mode = try r.u32(), rdev = try r.u32()
            try r.skip(8)                                   // umask (applied by the guest: no FUSE_DONT_MASK), padding
            return .mknod(name: try r.name("name", max: limits.maxName), mode: mode, rdev: rdev)
        case .mkdir:
            try r.need(8, "fuse_mkdir_in")
            let mode = try r.u32()
            try r.skip(4)
            return .mkdir(name: try r.name("name", max: limits.maxName), mode: mode)
        case .unlink: return .unlink(try r.name("name", max: limits.maxName))
        case .rmdir: return .rmdir(try r.name("name", max: limits.maxName))
        case .rename, .rename2:
            try r.need(opcode == .rename ? 8 : 16, opcode == .rename ? "fuse_rename_in" : "fuse_rename2_in")
            let directory = try r.u64()
            var flags: UInt32 = 0
            if opcode == .rename2 {
                flags = try r.u32()
                try r.skip(4)
            }
            let from = try r.name("old name", max: limits.maxName)
            let to = try r.name("new name", max: limits.maxName)
            return .rename(from: from, toDirectory: directory, to: to, flags: flags)
        case .link:
            try r.need(8, "fuse_link_in")
            let node = try r.u64()
            return .link(node: node, name: try r.name("name", max: limits.maxName))
        case .open, .opendir:
            try r.need(8, "fuse_open_in")
            let flags = try r.u32()
            return opcode == .open ? .open(flags: flags) : .opendir(flags: flags)
        case .read, .readdir, .readdirplus:
            try r.need(40, "fuse_read_in")
            let fh = try r.u64(), offset = try r.u64(), size = try r.u32()
            guard Int(size) <= limits.maxWrite else {
                throw FuseError(E2BIG, "\(opcode): size \(size) exceeds \(limits.maxWrite)")
            }
            return opcode == .read ? .read(fh: fh, offset: offset, size: size)
                : .readdir(fh: fh, offset: offset, size: size, plus: opcode == .readdirplus)
        case .write:
            try r.need(40, "fuse_write_in")
            let fh = try r.u64(), offset = try r.u64(), size = Int(try r.u32())
            try r.skip(20)                                  // write_flags, lock_owner, flags, padding
            guard size <= limits.maxWrite else {
                throw FuseError(E2BIG, "FUSE_WRITE: size \(size) exceeds \(limits.maxWrite)")
            }
            guard size == r.remaining else {
                throw .invalid("FUSE_WRITE: size \(size) but \(r.remaining) bytes of data")
            }
            return .write(fh: fh, offset: offset, data: try r.take(size, "write data"))
        case .statfs: return .statfs
        case .release, .releasedir:
            try r.need(24, "fuse_release_in")
            let fh = try r.u64()
            return opcode == .release ? .release(fh: fh) : .releasedir(fh: fh)
        case .fsync, .fsyncdir:
            try r.need(16, "fuse_fsync_in")
            let fh = try r.u64()
            let dataOnly = try r.u32() & FuseConstant.fsyncDataSync != 0
            return opcode == .fsync ? .fsync(fh: fh, dataOnly: dataOnly) : .fsyncdir(fh: fh, dataOnly: dataOnly)
        case .flush:
            try r.need(24, "fuse_flush_in")
            return .flush(fh: try r.u64())
        case .setxattr:
            // FUSE_SETXATTR_EXT is not negotiated: the 8-byte compat fuse_setxattr_in.
            try r.need(8, "fuse_setxattr_in")
            let size = Int(try r.u32()), flags = try r.u32()
            let name = try xattrName(&r)
            guard size <= limits.maxXattrSize else {
                throw FuseError(E2BIG, "FUSE_SETXATTR: value of \(size) bytes exceeds \(limits.maxXattrSize)")
            }
            guard size == r.remaining else {
                throw .invalid("FUSE_SETXATTR: size \(size) but \(r.remaining) bytes of value")
            }
            return .setxattr(name: name, value: try r.take(size, "xattr value"), flags: flags)
        case .getxattr, .listxattr:
            try r.need(8, "fuse_getxattr_in")
            let size = try r.u32()
            try r.skip(4)
            return opcode == .listxattr ? .listxattr(size: size) : .getxattr(name: try xattrName(&r), size: size)
        case .removexattr: return .removexattr(name: try xattrName(&r))
        case .access:
            try r.need(8, "fuse_access_in")
            return .access(mask: try r.u32())
        case .create:
            try r.need(16, "fuse_create_in")
            let flags = try r.u32(), mode = try r.u32()
            try r.skip(8)                                   // umask, open_flags
            return .create(name: try r.name("name", max: limits.maxName), flags: flags, mode: mode)
        case .interrupt:
            try r.need(8, "fuse_interrupt_in")
            return .interrupt(unique: try r.u64())
        case .lseek:
            try r.need(24, "fuse_lseek_in")
            return .lseek(fh: try r.u64(), offset: try r.u64(), whence: try r.u32())
        case .fallocate:
            try r.need(32, "fuse_fallocate_in")
            return .fallocate(fh: try r.u64(), offset: try r.u64(), length: try r.u64(), mode: try r.u32())
        case .syncfs:
            try r.need(8, "fuse_syncfs_in")
            return .syncfs
        default:
            return .unsupported(opcode)
        }
    }

    /// An xattr name: NUL-terminated, 1...XATTR_NAME_MAX bytes ('/' is allowed here).
    private func xattrName(_ r: inout FuseReader) throws(FuseError) -> [UInt8] {
        let name: ArraySlice<UInt8>
        do { name = try r.cString("xattr name", max: limits.maxXattrName) } catch {
            // Linux answers ERANGE for an over-long attribute name.
            throw error.errno == ENAMETOOLONG ? FuseError(ERANGE, error.message) : error
        }
        guard !name.isEmpty else { throw FuseError(ERANGE, "\(r.what): empty xattr name") }
        return Array(name)
    }
}
