#if canImport(Glibc)
import Glibc
#endif
import CPosix

/// A host inode's identity, for deduplication: the same file reached twice (a hard
/// link, a second LOOKUP) gets the same nodeid. The mount is part of it: one
/// directory bind-mounted twice (podman's `-v dir:/data -v dir:/ro:ro`, two entries of
/// the `binds` share) has one st_dev and st_ino, but writes must go through the
/// read-write mount and fail through the read-only one.
struct InodeKey: Hashable {
    var device: UInt64
    var inode: UInt64
    var mount: UInt64

    init(_ st: stat, fd: Int32) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        var id: UInt64 = 0
        mount = cposix_mount_id(fd, &id) == 0 ? id : 0
    }
}

/// An inode the guest knows: an `O_PATH | O_NOFOLLOW` fd that pins the host inode
/// (so its number is not reused while we hold it, and a rename or a swap on the host
/// cannot change what it refers to), its identity, its file type, and the guest's
/// lookup count.
struct Inode {
    let fd: OwnedDescriptor
    /// The fd's room in the share's descriptor cap (none for the share's root).
    let slot: DescriptorSlot?
    let key: InodeKey
    /// The `S_IFMT` bits; a file's type never changes.
    let type: mode_t
    var lookups: UInt64

    var isDirectory: Bool { type == S_IFDIR }
    var isRegular: Bool { type == S_IFREG }
    var isSymlink: Bool { type == S_IFLNK }
}

/// The guest's nodeids (1 = the share's root) and their inodes. Nodeids are never
/// reused (a 64-bit counter), so a stale nodeid from the guest finds nothing.
/// Every inode but the root holds a slot of the share's `DescriptorAccount`.
struct InodeTable {
    let account: DescriptorAccount
    private var nodes: [UInt64: Inode] = [:]
    private var byKey: [InodeKey: UInt64] = [:]
    private var nextID: UInt64 = FuseConstant.rootID + 1

    init(root: OwnedDescriptor, _ st: stat, account: DescriptorAccount) {
        self.account = account
        let inode = Inode(fd: root, slot: nil, key: InodeKey(st, fd: root.rawValue), type: st.st_mode & S_IFMT, lookups: 1)
        nodes[FuseConstant.rootID] = inode
        byKey[inode.key] = FuseConstant.rootID
    }

    var count: Int { nodes.count }

    func contains(_ id: UInt64) -> Bool { nodes[id] != nil }

    /// The inode of `id`, or EBADF for a nodeid the guest was never given (or forgot).
    func get(_ id: UInt64) throws(FuseError) -> Inode {
        guard let inode = nodes[id] else { throw FuseError(EBADF, "nodeid \(id) is not known") }
        return inode
    }

    func lookups(_ id: UInt64) -> UInt64? { nodes[id]?.lookups }

    /// Records one more guest reference to the inode `fd` refers to: an existing
    /// nodeid when the inode is already known (and `fd` is dropped), else a new one,
    /// which keeps `fd` in a slot of the share's cap (`reserved`, or one taken here:
    /// EMFILE / ENFILE when the cap is reached).
    mutating func reference(_ fd: OwnedDescriptor, _ st: stat, reserved: DescriptorSlot? = nil,
                            _ what: @autoclosure () -> String) throws(FuseError) -> UInt64 {
        let key = InodeKey(st, fd: fd.rawValue)
        if let id = byKey[key] {
            nodes[id]!.lookups &+= 1
            return id
        }
        let slot: DescriptorSlot
        if let reserved { slot = reserved } else { slot = try account.take(what()) }
        let id = nextID
        nextID += 1
        nodes[id] = Inode(fd: fd, slot: slot, key: key, type: st.st_mode & S_IFMT, lookups: 1)
        byKey[key] = id
        return id
    }

    /// One more reference to a known nodeid (LINK of an inode the guest already has).
    mutating func reference(_ id: UInt64) {
        nodes[id]?.lookups &+= 1
    }

    /// FORGET: drops `count` references; at zero the inode's fd is closed. The root
    /// stays for the session's lifetime.
    mutating func forget(_ id: UInt64, count: UInt64) {
        guard id != FuseConstant.rootID, var inode = nodes[id] else { return }
        inode.lookups -= min(count, inode.lookups)
        if inode.lookups == 0 {
            nodes[id] = nil
            byKey[inode.key] = nil
        } else {
            nodes[id] = inode
        }
    }

    /// Forgets everything but the root (DESTROY, device reset).
    mutating func removeAllButRoot() {
        let root = nodes[FuseConstant.rootID]!
        nodes = [FuseConstant.rootID: root]
        byKey = [root.key: FuseConstant.rootID]
    }
}

/// An open file or directory (OPEN / CREATE / OPENDIR) and the fh the guest names it
/// by, with the fd's slot in the share's descriptor cap.
struct FileHandle {
    let fd: OwnedDescriptor
    let slot: DescriptorSlot
    let isDirectory: Bool
}

struct HandleTable {
    private var handles: [UInt64: FileHandle] = [:]
    private var nextID: UInt64 = 1

    var count: Int { handles.count }

    mutating func insert(_ handle: FileHandle) -> UInt64 {
        let id = nextID
        nextID += 1
        handles[id] = handle
        return id
    }

    /// The handle `fh`, which must be a directory handle or not, as `directory` says.
    func get(_ fh: UInt64, directory: Bool) throws(FuseError) -> FileHandle {
        guard let handle = handles[fh], handle.isDirectory == directory else {
            throw FuseError(EBADF, "fh \(fh) is not an open \(directory ? "directory" : "file")")
        }
        return handle
    }

    /// RELEASE / RELEASEDIR: the fd is closed when the last use of it ends.
    mutating func remove(_ fh: UInt64, directory: Bool) throws(FuseError) {
        _ = try get(fh, directory: directory)
        handles[fh] = nil
    }

    mutating func removeAll() { handles.removeAll() }
}

// MARK: - snapshots

extension InodeTable {
    /// Every inode but the root, by nodeid.
    var nonRootNodes: [(id: UInt64, inode: Inode)] {
        nodes.filter { $0.key != FuseConstant.rootID }.map { ($0.key, $0.value) }.sorted { $0.id < $1.id }
    }

    var nextNodeID: UInt64 { nextID }
    var root: Inode { nodes[FuseConstant.rootID]! }

    /// The table of a restored session: the root plus `restored`, nodeids kept.
    init(root: Inode, restored: [(id: UInt64, inode: Inode)], nextID: UInt64, account: DescriptorAccount) {
        self.account = account
        nodes[FuseConstant.rootID] = root
        byKey[root.key] = FuseConstant.rootID
        for (id, inode) in restored {
            nodes[id] = inode
            if byKey[inode.key] == nil { byKey[inode.key] = id }
        }
        self.nextID = nextID
    }
}

extension HandleTable {
    var all: [(fh: UInt64, handle: FileHandle)] { handles.map { ($0.key, $0.value) }.sorted { $0.fh < $1.fh } }
    var nextHandleID: UInt64 { nextID }

    init(restored: [(fh: UInt64, handle: FileHandle)], nextID: UInt64) {
        for (fh, handle) in restored { handles[fh] = handle }
        self.nextID = nextID
    }
}
