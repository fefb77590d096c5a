#if canImport(Glibc)
import Glibc
#endif

/// Operations that make new directory entries: MKNOD, MKDIR, SYMLINK, CREATE, LINK.
/// The server runs as root: each new node is then given to the caller (chown to the
/// request's uid/gid) and its mode is set to exactly what the guest asked, since the
/// VMM's own umask and the chown may have cleared bits the guest wanted.
extension PassthroughFileSystem {
    /// FUSE_MKNOD: regular files, FIFOs, sockets and device nodes (the guest's root
    /// may make them, as in a runc container with CAP_MKNOD). The server itself never
    /// opens anything but regular files and directories, so a device node made here
    /// gives the guest no access to a host device.
    public func mknod(parent: UInt64, name: FuseName, mode: UInt32, rdev: UInt32, caller: FuseCaller) throws(FuseError) -> FuseEntry {
        let type = mode_t(mode) & S_IFMT
        guard [S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK].contains(type) else {
            throw .invalid("MKNOD `\(name)`: file type \(String(type, radix: 8))")
        }
        if type == S_IFCHR || type == S_IFBLK, !allowsDevices {
            throw FuseError(EPERM, "MKNOD `\(name)`: device nodes not granted to the container (CAP_MKNOD)")
        }
        try requireSetIDAllowed(mode, type: type, "MKNOD `\(name)`")
        return try make(parent: parent, name: name, mode: mode, caller: caller, what: "mknodat") { dirfd, cname in
            mknodat(dirfd, cname, mode_t(mode), dev_t(rdev))
        }
    }

    /// FUSE_MKDIR.
    public func mkdir(parent: UInt64, name: FuseName, mode: UInt32, caller: FuseCaller) throws(FuseError) -> FuseEntry {
        try make(parent: parent, name: name, mode: mode | UInt32(S_IFDIR), caller: caller, what: "mkdirat") { dirfd, cname in
            mkdirat(dirfd, cname, mode_t(mode) & 0o7777)
        }
    }

    /// FUSE_SYMLINK: the target is stored as given; it is never resolved by the server.
    public func symlink(parent: UInt64, name: FuseName, target: [UInt8], caller: FuseCaller) throws(FuseError) -> FuseEntry {
        let terminated = target + [0]
        return try make(parent: parent, name: name, mode: UInt32(S_IFLNK) | 0o777, caller: caller, what: "symlinkat") { dirfd, cname in
            terminated.withUnsafeBufferPointer { raw in
                raw.withMemoryRebound(to: CChar.self) { symlinkat($0.baseAddress!, dirfd, cname) }
            }
        }
    }

    /// FUSE_CREATE: creates (or, without O_EXCL, opens an existing) regular file and
    /// opens it. Returns the entry and the new fh.
    public func create(parent: UInt64, name: FuseName, flags: UInt32, mode: UInt32,
                       caller: FuseCaller) throws(FuseError) -> (FuseEntry, UInt64) {
        try entryName(name, "CREATE")
        try requireSetIDAllowed(mode, type: S_IFREG, "CREATE `\(name)`")
        let directory = try self.directory(parent)
        let parentStat = try attributes(directory, parent)
        let openFlags = Self.hostOpenFlags(flags) | O_CREAT | O_NOFOLLOW | O_CLOEXEC
        let argument = "node \(parent)/\(name)"
        // Room for the inode and the open file first: at the cap nothing is made.
        let inodeSlot = try descriptors.take("create `\(argument)`")
        let handleSlot = try descriptors.take("create `\(argument)`")
        var created = true
        var raw = name.withCString { openat(directory.fd.rawValue, $0, openFlags | O_EXCL, mode_t(mode) & 0o7777) }
        if raw == -1 && errno == EEXIST && Int32(bitPattern: flags) & O_EXCL == 0 {
            // Someone (the host) made it first and the guest did not ask for O_EXCL:
            // open it, but only if it is a regular file (an O_RDONLY open of a FIFO
            // would block the VMM; a device node is not the guest's to open here).
            created = false
            raw = try reopenExisting(directory.fd, name, flags: openFlags & ~O_CREAT, argument)
        } else if raw == -1 {
            throw FuseError(errno, "openat `\(argument)` (O_CREAT)")
        }
        let file = OwnedDescriptor(adopting: raw)
        if created {
            do {
                try own(file, caller: caller, mode: mode | UInt32(S_IFREG), parent: parentStat, "node \(parent)/\(name)")
            } catch {
                _ = name.withCString { unlinkat(directory.fd.rawValue, $0, 0) }
                throw error
            }
        }
        // The inode's O_PATH fd comes from the open file itself: no second walk by name.
        let path = try fsCall("open", "\(argument) as O_PATH") {
            Glibc.open(Linux.procPath(file), Linux.O_PATH | O_CLOEXEC)
        }
        var st = stat()
        try fsCall("fstat", argument) { fstat(file.rawValue, &st) }
        let nodeid = try inodes.reference(OwnedDescriptor(adopting: path), st, reserved: inodeSlot, argument)
        let fh = handles.insert(FileHandle(fd: file, slot: handleSlot, isDirectory: false))
        return (FuseEntry(nodeid: nodeid, attributes: st), fh)
    }

    /// FUSE_LINK: a new name in `parent` for the inode `node` (not a directory).
    public func link(node: UInt64, parent: UInt64, name: FuseName) throws(FuseError) -> FuseEntry {
        try entryName(name, "LINK")
        let inode = try inodes.get(node)
        guard !inode.isDirectory else { throw FuseError(EPERM, "LINK of directory node \(node)") }
        let directory = try self.directory(parent)
        // linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; the /proc magic link
        // names the inode itself (a symlink inode is linked, not followed).
        try fsCall("linkat", "node \(node) to node \(parent)/\(name)") {
            name.withCString { linkat(AT_FDCWD, Linux.procPath(inode.fd), directory.fd.rawValue, $0, AT_SYMLINK_FOLLOW) }
        }
        return try reference(parent, name)
    }

    // MARK: - helpers

    /// Opens an existing entry for CREATE without O_EXCL: pinned by an `O_PATH` fd
    /// first, checked to be a regular file, then reopened through `/proc/self/fd`.
    private func reopenExisting(_ directory: OwnedDescriptor, _ name: FuseName, flags: Int32,
                                _ argument: String) throws(FuseError) -> Int32 {
        let path = try openChild(directory, name, argument)
        var st = stat()
        try fsCall("fstatat", argument) { fstatat(path.rawValue, "", &st, Linux.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFLNK: throw FuseError(ELOOP, "open `\(argument)`: a symlink")
        case S_IFDIR: throw FuseError(EISDIR, "open `\(argument)`: a directory")
        default: throw FuseError(ENXIO, "open `\(argument)`: not a regular file")
        }
        return try fsCall("open", argument) { Glibc.open(Linux.procPath(path), flags & ~O_NOFOLLOW) }
    }

    /// Creates `name` in `parent` with `body(dirfd, name)`, gives it to the caller and
    /// returns the referenced entry. On failure after creation, the entry is removed.
    private func make(parent: UInt64, name: FuseName, mode: UInt32, caller: FuseCaller, what: String,
                      _ body: (Int32, UnsafePointer<CChar>) -> Int32) throws(FuseError) -> FuseEntry {
        try entryName(name, what)
        let directory = try self.directory(parent)
        let parentStat = try attributes(directory, parent)
        let argument = "node \(parent)/\(name)"
        // Room for the new inode first: at the cap nothing is made.
        let slot = try descriptors.take("\(what) `\(argument)`")
        try fsCall(what, argument) { name.withCString { body(directory.fd.rawValue, $0) } }
        do {
            let fd = try openChild(directory.fd, name, argument)
            try own(fd, caller: caller, mode: mode, parent: parentStat, argument)
            var st = stat()
            try fsCall("fstatat", argument) { fstatat(fd.rawValue, "", &st, Linux.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
            return FuseEntry(nodeid: try inodes.reference(fd, st, reserved: slot, argument), attributes: st)
        } catch {
            let flags = mode_t(mode) & S_IFMT == S_IFDIR ? AT_REMOVEDIR : 0
            _ = name.withCString { unlinkat(directory.fd.rawValue, $0, flags) }
            throw error
        }
    }

    /// Gives a node the server just made to the caller: owner uid, and group gid unless
    /// the parent directory is set-group-ID (then the kernel already chose the parent's
    /// group, and a directory inherits S_ISGID). Then sets the permission bits to
    /// `mode`, since the chown clears set-ID bits and the VMM's umask applied at creation.
    func own(_ fd: OwnedDescriptor, caller: FuseCaller, mode: UInt32, parent: stat, _ argument: String) throws(FuseError) {
        let inheritsGroup = parent.st_mode & S_ISGID != 0
        let gid = inheritsGroup ? gid_t.max : caller.gid           // -1: leave the group
        try fsCall("fchownat", argument) { fchownat(fd.rawValue, "", caller.uid, gid, Linux.AT_EMPTY_PATH) }
        let type = mode_t(mode) & S_IFMT
        guard type != S_IFLNK else { return }                       // a symlink's mode means nothing
        var wanted = mode_t(mode) & 0o7777
        if inheritsGroup && type == S_IFDIR { wanted |= S_ISGID }
        var st = stat()
        try fsCall("fstat", argument) { fstatat(fd.rawValue, "", &st, Linux.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
        if st.st_mode & 0o7777 != wanted {
            try fsCall("fchmodat", argument) { fchmodat(AT_FDCWD, Linux.procPath(fd), wanted, 0) }
        }
    }

    /// The guest's open(2) flags the host open may carry: the access mode, O_APPEND,
    /// O_TRUNC, the sync flags, O_NONBLOCK, O_NOATIME. O_CREAT / O_EXCL / O_NOFOLLOW
    /// are the server's to set; O_DIRECT is dropped (the server's buffers are not
    /// aligned; the guest's page cache policy is the guest's).
    static func hostOpenFlags(_ guest: UInt32) -> Int32 {
        Int32(bitPattern: guest) & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NONBLOCK | Linux.O_NOATIME)
    }
}
