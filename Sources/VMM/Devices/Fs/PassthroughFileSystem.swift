#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Who made a request (from fuse_in_header): new files are owned by them.
public struct FuseCaller: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: UInt32
    public init(uid: UInt32, gid: UInt32, pid: UInt32 = 0) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
    }
}

/// A name the guest now holds a reference to (one lookup count).
public struct FuseEntry {
    public var nodeid: UInt64
    public var attributes: stat
}

/// Serves one host directory to the guest, as virtiofsd does without its sandbox:
/// the server runs as root and acts for the guest's root.
///
/// Confinement to the share: the server never resolves a path string from the
/// share's top. Each inode the guest knows is held as an `O_PATH | O_NOFOLLOW` fd;
/// every operation is relative to its parent inode's fd with one name component
/// that contains no '/' and is not "." or ".."; symlinks are never followed (their
/// target is the guest's business, via READLINK); and an inode, once looked up,
/// stays the same host inode whatever the host renames or swaps afterwards. Files
/// are reopened for I/O through `/proc/self/fd/N`, which refers to the inode itself.
///
/// Not thread-safe: the device calls it under its transport's lock.
public final class PassthroughFileSystem {
    public let rootPath: String
    /// A read-only share: every change fails with EROFS here, whatever the guest's
    /// mount says (the guest kernel is not trusted to honour its own `ro`).
    public let readOnly: Bool
    /// Whether the guest may make set-user-ID files and set-group-ID files (not
    /// directories: their S_ISGID only passes the group on). Off when the container's
    /// spec does not grant CAP_FSETID: then CREATE, MKNOD and SETATTR asking for them
    /// get EPERM, so no setuid file made by the guest appears in the host's directory.
    public var allowsSetID: Bool {
        get { setIDAllowed.load(ordering: .relaxed) }
        set { setIDAllowed.store(newValue, ordering: .relaxed) }
    }
    /// Whether the guest may make device nodes. Off when the spec does not grant
    /// CAP_MKNOD (the VMM then lacks it too, and the host kernel would refuse as well).
    /// Both may change while the guest runs (the container's set-up may, its process
    /// may not), hence atomics.
    public var allowsDevices: Bool {
        get { devicesAllowed.load(ordering: .relaxed) }
        set { devicesAllowed.store(newValue, ordering: .relaxed) }
    }
    private let setIDAllowed = Atomic<Bool>(true)
    private let devicesAllowed = Atomic<Bool>(true)
    var inodes: InodeTable
    var handles = HandleTable()
    /// The host fds the inodes and handles hold, against this share's cap and the
    /// VMM's budget.
    var descriptors: DescriptorAccount { inodes.account }

    /// Opens the share. The host path itself may go through symlinks (the host chose it).
    /// The guest's inodes and open files may hold up to `shareLimit` host fds (by
    /// default `DescriptorAccount.shareLimit(of: budget)`) and, with every other share
    /// of the VMM, no more than `budget`.
    public init(root path: String, readOnly: Bool = false, budget: DescriptorBudget, shareLimit: Int? = nil) throws(SystemCallError) {
        let fd = try OwnedDescriptor.open(path, flags: Linux.O_PATH | O_DIRECTORY)
        var st = stat()
        try check("fstat", path) { fstatat(fd.rawValue, "", &st, Linux.AT_EMPTY_PATH) }
        rootPath = path
        self.readOnly = readOnly
        inodes = InodeTable(root: fd, st, account: DescriptorAccount(share: path, budget: budget, limit: shareLimit))
    }

    /// How many inodes and open handles the guest holds (for tests and diagnostics).
    public var inodeCount: Int { inodes.count }
    public var handleCount: Int { handles.count }
    /// How many host fds they hold (the root's excepted), and the share's cap on them.
    public var heldDescriptors: Int { descriptors.held }
    public var descriptorLimit: Int { descriptors.limit }
    public func lookupCount(_ nodeid: UInt64) -> UInt64? { inodes.lookups(nodeid) }

    /// Forgets every inode but the root and closes every handle (DESTROY, device reset).
    public func reset() {
        handles.removeAll()
        inodes.removeAllButRoot()
    }

    // MARK: - helpers shared by the operation files

    /// EPERM for set-ID bits the share does not allow (`allowsSetID`) on a node of `type`.
    func requireSetIDAllowed(_ mode: UInt32, type: mode_t, _ what: @autoclosure () -> String) throws(FuseError) {
        guard !allowsSetID else { return }
        let bits = mode_t(mode) & (type == S_IFDIR ? S_ISUID : S_ISUID | S_ISGID)
        guard bits == 0 else { throw FuseError(EPERM, "\(what()): set-ID bits \(String(bits, radix: 8)) not granted to the container (CAP_FSETID)") }
    }

    /// EROFS on a read-only share.
    func requireWritable(_ what: @autoclosure () -> String) throws(FuseError) {
        guard !readOnly else { throw FuseError(EROFS, "\(what()) on read-only share `\(rootPath)`") }
    }

    /// The attributes of an inode, never following a symlink.
    func attributes(_ inode: Inode, _ id: UInt64) throws(FuseError) -> stat {
        var st = stat()
        try fsCall("fstatat", "node \(id)") {
            fstatat(inode.fd.rawValue, "", &st, Linux.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
        }
        return st
    }

    /// The inode of a directory nodeid (ENOTDIR otherwise: e.g. a name under a symlink).
    func directory(_ id: UInt64) throws(FuseError) -> Inode {
        let inode = try inodes.get(id)
        guard inode.isDirectory else { throw FuseError(ENOTDIR, "node \(id) is not a directory") }
        return inode
    }

    /// Refuses "." and ".." where a real entry of the directory is meant.
    func entryName(_ name: FuseName, _ what: String) throws(FuseError) {
        guard !name.isDot, !name.isDotDot else { throw .invalid("\(what) `\(name)`: not an entry name") }
    }

    /// `openat(directory, name, O_PATH | O_NOFOLLOW)`: one component, no symlink followed.
    func openChild(_ directory: OwnedDescriptor, _ name: FuseName, _ argument: @autoclosure () -> String) throws(FuseError) -> OwnedDescriptor {
        let fd = try fsCall("openat", argument()) {
            name.withCString { openat(directory.rawValue, $0, Linux.O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        }
        return OwnedDescriptor(adopting: fd)
    }

    /// Takes a reference to the entry `name` of the directory open as `directory`
    /// (LOOKUP, READDIRPLUS, after creating).
    func reference(in directory: OwnedDescriptor, _ name: FuseName, _ argument: @autoclosure () -> String) throws(FuseError) -> FuseEntry {
        let fd = try openChild(directory, name, argument())
        var st = stat()
        try fsCall("fstatat", argument()) { fstatat(fd.rawValue, "", &st, Linux.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
        return FuseEntry(nodeid: try inodes.reference(fd, st, argument()), attributes: st)
    }

    func reference(_ parentID: UInt64, _ name: FuseName) throws(FuseError) -> FuseEntry {
        try reference(in: try directory(parentID).fd, name, "node \(parentID)/\(name)")
    }

    // MARK: - LOOKUP, FORGET, GETATTR

    /// FUSE_LOOKUP. "." is the directory itself; ".." of the share's root is the root.
    /// ".." of any other directory is refused: the server does not offer
    /// FUSE_EXPORT_SUPPORT, so a Linux guest resolves ".." itself and never sends it,
    /// and answering it from the host could climb out of a directory the host moved
    /// outside the share.
    public func lookup(parent: UInt64, name: FuseName) throws(FuseError) -> FuseEntry {
        if name.isDot || (name.isDotDot && parent == FuseConstant.rootID) {
            let inode = try directory(parent)
            let st = try attributes(inode, parent)
            inodes.reference(parent)
            return FuseEntry(nodeid: parent, attributes: st)
        }
        guard !name.isDotDot else { throw .invalid("LOOKUP `..` of node \(parent): not offered") }
        return try reference(parent, name)
    }

    /// FUSE_FORGET / FUSE_BATCH_FORGET.
    public func forget(_ nodeid: UInt64, count: UInt64) {
        inodes.forget(nodeid, count: count)
    }

    /// FUSE_GETATTR (through the handle's fd when the guest names one).
    public func getattr(_ nodeid: UInt64, fh: UInt64?) throws(FuseError) -> stat {
        let inode = try inodes.get(nodeid)
        if let fh, let handle = try? handles.get(fh, directory: inode.isDirectory) {
            var st = stat()
            try fsCall("fstat", "fh \(fh)") { fstat(handle.fd.rawValue, &st) }
            return st
        }
        return try attributes(inode, nodeid)
    }
}
