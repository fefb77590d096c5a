#if canImport(Glibc)
import Glibc
#endif

/// Moving a share into the VMM's jail (`Jail`): its root and every inode and open
/// file the guest holds (a share restored from a snapshot holds some) are reopened
/// through the jail's bind mount of the same directory, so that no descriptor of
/// the file server still reaches the host's mount tree (where ".." of a share's
/// root would lead to the host's `/`).
extension PassthroughFileSystem {
    /// Reopens the share at `newRoot` (the same directory, `Jail.staged(rootPath)`
    /// before the pivot): the same host inode, or an error. Inodes and handles are
    /// saved by their path relative to the root and reopened below the new root the
    /// way a snapshot restore does (component by component, no symlink followed).
    /// Only before the guest runs (no request is in flight).
    func reroot(to newRoot: String) throws(SnapshotError) {
        var writer = SnapshotWriter()
        try captureState(into: &writer)
        let fd: OwnedDescriptor
        do { fd = try OwnedDescriptor.open(newRoot, flags: Linux.O_PATH | O_DIRECTORY | O_NOFOLLOW) } catch {
            throw .io(error)
        }
        var st = stat()
        guard fstatat(fd.rawValue, "", &st, Linux.AT_EMPTY_PATH) == 0 else {
            throw .io(SystemCallError(call: "fstat", argument: newRoot, errno: .init(rawValue: errno)))
        }
        var old = stat()
        guard fstatat(inodes.root.fd.rawValue, "", &old, Linux.AT_EMPTY_PATH) == 0 else {
            throw .io(SystemCallError(call: "fstat", argument: rootPath, errno: .init(rawValue: errno)))
        }
        guard st.st_dev == old.st_dev, st.st_ino == old.st_ino else {
            throw .unsupported("share `\(rootPath)`: `\(newRoot)` is not the same directory")
        }
        // The old descriptors go first, so that their room in the caps is free again.
        handles = HandleTable()
        inodes = InodeTable(root: fd, st, account: descriptors)
        var reader = SnapshotReader(writer.bytes, what: "virtio-fs `\(rootPath)` moved into the jail")
        try restoreState(from: &reader)
    }
}

extension Machine {
    /// The host directories the machine's virtio-fs devices serve, and whether read-only.
    public var sharedDirectories: [(path: String, readOnly: Bool)] {
        fileSystems.map { ($0.rootPath, $0.readOnly) }
    }

    /// What the guest may make on every share: set-ID files (`allowsSetID`) and
    /// device nodes (`allowsDevices`), as the container's spec grants; nil leaves one
    /// as it is. Safe while the guest runs.
    public func restrictShares(setID: Bool? = nil, devices: Bool? = nil) {
        for fileSystem in fileSystems {
            if let setID { fileSystem.allowsSetID = setID }
            if let devices { fileSystem.allowsDevices = devices }
        }
    }

    /// Reopens every share through the jail (`Jail.build` done, `Jail.pivot` not yet):
    /// see `PassthroughFileSystem.reroot`. Before the machine runs.
    public func moveShares(into jail: Jail) throws(SnapshotError) {
        for fileSystem in fileSystems { try fileSystem.reroot(to: jail.staged(fileSystem.rootPath)) }
    }
}
