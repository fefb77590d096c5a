#if canImport(Glibc)
import Glibc
#endif

/// The answer to GETXATTR / LISTXATTR: with a size-0 probe, the size the value
/// needs; otherwise the value.
public enum FuseXattrReply: Equatable, Sendable {
    case size(Int)
    case value([UInt8])
}

/// Attribute operations: SETATTR, READLINK, ACCESS, STATFS and extended attributes.
///
/// chmod, truncate, utimensat and the xattr calls refuse `O_PATH` fds (and fchmodat
/// with AT_EMPTY_PATH is not on every kernel), so without a guest file handle they go
/// through `/proc/self/fd/N`, which names the inode itself: following that magic link
/// ends on the inode, even a symlink, and never walks its target. chown and stat work
/// on the `O_PATH` fd directly with AT_EMPTY_PATH.
extension PassthroughFileSystem {
    /// FUSE_SETATTR: mode, owner, size, atime/mtime (values or "now"), in that order.
    public func setattr(_ nodeid: UInt64, _ change: FuseSetattr) throws(FuseError) -> stat {
        let inode = try inodes.get(nodeid)
        let handle = change.has(FuseConstant.setattrFH) ? try? handles.get(change.fh, directory: false) : nil
        let argument = "node \(nodeid)"
        let path = Linux.procPath(inode.fd)
        if change.has(FuseConstant.setattrMode) {
            let mode = mode_t(change.mode) & 0o7777
            try requireSetIDAllowed(UInt32(mode), type: inode.type, "SETATTR \(argument) mode")
            if let handle {
                try fsCall("fchmod", argument) { fchmod(handle.fd.rawValue, mode) }
            } else {
                try fsCall("fchmodat", argument) { fchmodat(AT_FDCWD, path, mode, 0) }
            }
        }
        if change.has(FuseConstant.setattrUID) || change.has(FuseConstant.setattrGID) {
            let uid = change.has(FuseConstant.setattrUID) ? change.uid : uid_t.max
            let gid = change.has(FuseConstant.setattrGID) ? change.gid : gid_t.max
            try fsCall("fchownat", argument) { fchownat(inode.fd.rawValue, "", uid, gid, Linux.AT_EMPTY_PATH) }
        }
        if change.has(FuseConstant.setattrSize) {
            guard inode.isRegular else {
                throw FuseError(inode.isDirectory ? EISDIR : EINVAL, "truncate `\(argument)`: not a regular file")
            }
            guard let size = Int(exactly: change.size) else { throw FuseError(EFBIG, "truncate `\(argument)` to \(change.size)") }
            if let handle {
                try fsCall("ftruncate", argument) { ftruncate(handle.fd.rawValue, size) }
            } else {
                try fsCall("truncate", argument) { truncate(path, size) }
            }
        }
        let setsATime = change.has(FuseConstant.setattrATime) || change.has(FuseConstant.setattrATimeNow)
        let setsMTime = change.has(FuseConstant.setattrMTime) || change.has(FuseConstant.setattrMTimeNow)
        if setsATime || setsMTime {
            func time(_ set: Bool, now: UInt32, _ seconds: UInt64, _ nanoseconds: UInt32) -> timespec {
                if change.has(now) { return timespec(tv_sec: 0, tv_nsec: Linux.UTIME_NOW) }
                if set { return timespec(tv_sec: Int(truncatingIfNeeded: seconds), tv_nsec: Int(nanoseconds)) }
                return timespec(tv_sec: 0, tv_nsec: Linux.UTIME_OMIT)
            }
            let times = [
                time(change.has(FuseConstant.setattrATime), now: FuseConstant.setattrATimeNow, change.atime, change.atimensec),
                time(change.has(FuseConstant.setattrMTime), now: FuseConstant.setattrMTimeNow, change.mtime, change.mtimensec),
            ]
            if let handle {
                try fsCall("futimens", argument) { futimens(handle.fd.rawValue, times) }
            } else {
                try fsCall("utimensat", argument) { utimensat(AT_FDCWD, path, times, 0) }
            }
        }
        return try attributes(inode, nodeid)
    }

    /// FUSE_READLINK: the target as stored; the guest resolves it.
    public func readlink(_ nodeid: UInt64) throws(FuseError) -> [UInt8] {
        let inode = try inodes.get(nodeid)
        guard inode.isSymlink else { throw .invalid("readlinkat `node \(nodeid)`: not a symlink") }
        var target = [UInt8](repeating: 0, count: 4096)                 // PATH_MAX
        let n = try fsCallSize("readlinkat", "node \(nodeid)") {
            target.withUnsafeMutableBytes { raw in
                readlinkat(inode.fd.rawValue, "", raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
            }
        }
        return Array(target.prefix(n))
    }

    /// FUSE_ACCESS: the permission bits checked for the caller (root passes all but
    /// execute on a file nobody may execute). Supplementary groups are not known.
    /// A Linux guest mounts virtio-fs with default_permissions and checks itself.
    public func access(_ nodeid: UInt64, mask: UInt32, caller: FuseCaller) throws(FuseError) {
        let st = try attributes(try inodes.get(nodeid), nodeid)
        let wanted = mode_t(mask) & 7
        guard wanted != 0 else { return }                                // F_OK
        let denied = FuseError(EACCES, "access `node \(nodeid)` mask \(mask) for uid \(caller.uid)")
        if caller.uid == 0 {
            if wanted & mode_t(X_OK) != 0 && st.st_mode & S_IFMT != S_IFDIR && st.st_mode & 0o111 == 0 { throw denied }
            return
        }
        let bits = caller.uid == st.st_uid ? (st.st_mode >> 6) & 7
            : caller.gid == st.st_gid ? (st.st_mode >> 3) & 7 : st.st_mode & 7
        guard wanted & ~bits == 0 else { throw denied }
    }

    /// FUSE_STATFS of the filesystem holding `nodeid` (fstatfs accepts `O_PATH` fds).
    public func statfs(_ nodeid: UInt64) throws(FuseError) -> statvfs {
        let inode = try inodes.get(nodeid)
        var sv = statvfs()
        try fsCall("fstatvfs", "node \(nodeid)") { fstatvfs(inode.fd.rawValue, &sv) }
        return sv
    }

    // MARK: - extended attributes
    //
    // Names and values are byte arrays lent to the C calls for the call's duration;
    // UInt8 and CChar have the same size and alignment, so viewing one as the other
    // holds, and no pointer outlives its closure.

    /// FUSE_GETXATTR. `size` 0 probes the value's size; a value larger than `size`
    /// fails with ERANGE, as getxattr(2) does.
    public func getxattr(_ nodeid: UInt64, name: [UInt8], size: Int) throws(FuseError) -> FuseXattrReply {
        let inode = try inodes.get(nodeid)
        let getxattr = Linux.getxattr
        let argument = "node \(nodeid) \(String(decoding: name, as: UTF8.self))"
        let cName = name + [0]
        var value = [UInt8](repeating: 0, count: size)
        let n = try fsCallSize("getxattr", argument) {
            cName.withUnsafeBufferPointer { nameBytes in
                value.withUnsafeMutableBytes { raw in
                    getxattr(Linux.procPath(inode.fd), UnsafeRawPointer(nameBytes.baseAddress!).assumingMemoryBound(to: CChar.self),
                             size == 0 ? nil : raw.baseAddress, size)
                }
            }
        }
        return size == 0 ? .size(n) : .value(Array(value.prefix(n)))
    }

    /// FUSE_LISTXATTR: NUL-separated names; size-0 probe semantics as GETXATTR.
    public func listxattr(_ nodeid: UInt64, size: Int) throws(FuseError) -> FuseXattrReply {
        let inode = try inodes.get(nodeid)
        let listxattr = Linux.listxattr
        var list = [UInt8](repeating: 0, count: size)
        let n = try fsCallSize("listxattr", "node \(nodeid)") {
            list.withUnsafeMutableBytes { raw in
                listxattr(Linux.procPath(inode.fd), size == 0 ? nil : raw.baseAddress!.assumingMemoryBound(to: CChar.self), size)
            }
        }
        return size == 0 ? .size(n) : .value(Array(list.prefix(n)))
    }

    /// FUSE_SETXATTR with XATTR_CREATE / XATTR_REPLACE.
    public func setxattr(_ nodeid: UInt64, name: [UInt8], value: ArraySlice<UInt8>, flags: UInt32) throws(FuseError) {
        let inode = try inodes.get(nodeid)
        let setxattr = Linux.setxattr
        let flags = Int32(bitPattern: flags)
        guard flags & ~(Linux.XATTR_CREATE | Linux.XATTR_REPLACE) == 0 else {
            throw .invalid("setxattr `node \(nodeid)`: flags \(flags)")
        }
        let cName = name + [0]
        try fsCall("setxattr", "node \(nodeid) \(String(decoding: name, as: UTF8.self))") {
            cName.withUnsafeBufferPointer { nameBytes in
                value.withUnsafeBytes { raw in
                    setxattr(Linux.procPath(inode.fd), UnsafeRawPointer(nameBytes.baseAddress!).assumingMemoryBound(to: CChar.self),
                             raw.baseAddress, raw.count, flags)
                }
            }
        }
    }

    /// FUSE_REMOVEXATTR.
    public func removexattr(_ nodeid: UInt64, name: [UInt8]) throws(FuseError) {
        let inode = try inodes.get(nodeid)
        let removexattr = Linux.removexattr
        let cName = name + [0]
        try fsCall("removexattr", "node \(nodeid) \(String(decoding: name, as: UTF8.self))") {
            cName.withUnsafeBufferPointer { nameBytes in
                removexattr(Linux.procPath(inode.fd), UnsafeRawPointer(nameBytes.baseAddress!).assumingMemoryBound(to: CChar.self))
            }
        }
    }
}
