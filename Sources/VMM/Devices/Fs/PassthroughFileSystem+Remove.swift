#if canImport(Glibc)
import Glibc
#endif

/// Operations that remove or move directory entries: UNLINK, RMDIR, RENAME, RENAME2.
/// Inodes the guest still holds stay in the table (their fds keep them alive) until
/// the guest forgets them.
extension PassthroughFileSystem {
    /// FUSE_UNLINK.
    public func unlink(parent: UInt64, name: FuseName) throws(FuseError) {
        try entryName(name, "UNLINK")
        let directory = try self.directory(parent)
        try fsCall("unlinkat", "node \(parent)/\(name)") {
            name.withCString { unlinkat(directory.fd.rawValue, $0, 0) }
        }
    }

    /// FUSE_RMDIR.
    public func rmdir(parent: UInt64, name: FuseName) throws(FuseError) {
        try entryName(name, "RMDIR")
        let directory = try self.directory(parent)
        try fsCall("unlinkat", "node \(parent)/\(name) (AT_REMOVEDIR)") {
            name.withCString { unlinkat(directory.fd.rawValue, $0, AT_REMOVEDIR) }
        }
    }

    /// FUSE_RENAME and FUSE_RENAME2. Flags RENAME_NOREPLACE and RENAME_EXCHANGE go to
    /// renameat2(2); RENAME_WHITEOUT and unknown flags are refused with EINVAL (a
    /// whiteout is an overlayfs device node the guest has no business making on the host).
    public func rename(parent: UInt64, name: FuseName, newParent: UInt64, newName: FuseName, flags: UInt32) throws(FuseError) {
        try entryName(name, "RENAME")
        try entryName(newName, "RENAME")
        let from = try directory(parent)
        let to = try directory(newParent)
        let argument = "node \(parent)/\(name) to node \(newParent)/\(newName)"
        if flags == 0 {
            try fsCall("renameat", argument) {
                name.withCString { old in newName.withCString { new in renameat(from.fd.rawValue, old, to.fd.rawValue, new) } }
            }
            return
        }
        guard flags & ~(Linux.RENAME_NOREPLACE | Linux.RENAME_EXCHANGE) == 0 else {
            throw .invalid("renameat2 `\(argument)`: flags 0x\(String(flags, radix: 16))")
        }
        let renameat2 = Linux.renameat2
        try fsCall("renameat2", argument) {
            name.withCString { old in newName.withCString { new in renameat2(from.fd.rawValue, old, to.fd.rawValue, new, flags) } }
        }
    }
}
