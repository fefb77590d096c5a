#if canImport(Glibc)
import Glibc
#endif

/// Snapshots of a share in use: every inode and open handle the guest holds is saved
/// as its path relative to the share's root and its type (and a handle's open flags),
/// and reopened from the (possibly different) root of the restored share, one
/// component at a time, never following a symlink and never leaving the share. The
/// guest keeps its nodeids and fhs.
extension PassthroughFileSystem {
    static let maximumSnapshotNodes = 1 << 16
    static let maximumSnapshotPathBytes = 4096
    /// The open flags a handle keeps across a restore (creation flags are spent).
    static let reopenFlags = O_ACCMODE | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC

    func captureState(into writer: inout SnapshotWriter) throws(SnapshotError) {
        let root = try Self.hostPath(of: inodes.root.fd)
        let nodes = inodes.nonRootNodes
        writer.u64(inodes.nextNodeID)
        writer.u32(UInt32(nodes.count))
        for (id, inode) in nodes {
            writer.u64(id)
            writer.u64(inode.lookups)
            writer.u32(UInt32(inode.type))
            writer.blob(Array(try relativePath(of: inode.fd, root: root, what: "node \(id)").utf8))
        }
        let open = handles.all
        writer.u64(handles.nextHandleID)
        writer.u32(UInt32(open.count))
        for (fh, handle) in open {
            let flags = fcntl(handle.fd.rawValue, F_GETFL)
            guard flags >= 0 else {
                throw .io(SystemCallError(call: "fcntl F_GETFL", argument: "fh \(fh) of `\(rootPath)`", errno: .init(rawValue: errno)))
            }
            writer.u64(fh)
            writer.u8(handle.isDirectory ? 1 : 0)
            writer.u32(UInt32(bitPattern: flags & Self.reopenFlags))
            writer.blob(Array(try relativePath(of: handle.fd, root: root, what: "fh \(fh)").utf8))
        }
    }

    func restoreState(from reader: inout SnapshotReader) throws(SnapshotError) {
        let root = inodes.root
        let nextNode = try reader.u64()
        guard nextNode > FuseConstant.rootID else { throw .malformed("\(reader.what): next nodeid \(nextNode)") }
        var restored: [(id: UInt64, inode: Inode)] = []
        var seen = Set<UInt64>()
        for _ in 0..<(try reader.count(maximum: Self.maximumSnapshotNodes, of: "inodes")) {
            let id = try reader.u64(), lookups = try reader.u64(), type = try reader.u32()
            let path = try reader.string(maximum: Self.maximumSnapshotPathBytes, of: "path of node \(id)")
            guard id > FuseConstant.rootID, id < nextNode, seen.insert(id).inserted, lookups > 0 else {
                throw .malformed("\(reader.what): node \(id) (lookups \(lookups), next nodeid \(nextNode))")
            }
            let fd = try open(path, from: root.fd, what: "node \(id)")
            let st = try Self.status(fd, "node \(id) `\(path)`")
            guard UInt32(st.st_mode & S_IFMT) == type else {
                throw .unsupported("share `\(rootPath)`: `\(path)` (node \(id)) is no longer the same type of file")
            }
            let slot = try restoredSlot("node \(id) `\(path)`")
            restored.append((id, Inode(fd: fd, slot: slot, key: InodeKey(st, fd: fd.rawValue), type: st.st_mode & S_IFMT, lookups: lookups)))
        }
        let nextHandle = try reader.u64()
        var reopened: [(fh: UInt64, handle: FileHandle)] = []
        var seenHandles = Set<UInt64>()
        for _ in 0..<(try reader.count(maximum: Self.maximumSnapshotNodes, of: "handles")) {
            let fh = try reader.u64()
            let isDirectory = try reader.flag("fh \(fh) directory")
            let flags = Int32(bitPattern: try reader.u32())
            let path = try reader.string(maximum: Self.maximumSnapshotPathBytes, of: "path of fh \(fh)")
            guard fh > 0, fh < nextHandle, seenHandles.insert(fh).inserted, flags & ~Self.reopenFlags == 0 else {
                throw .malformed("\(reader.what): fh \(fh) (flags 0x\(String(flags, radix: 16)), next fh \(nextHandle))")
            }
            if readOnly && flags & O_ACCMODE != O_RDONLY { throw .malformed("\(reader.what): fh \(fh) open for writing on a read-only share") }
            let slot = try restoredSlot("fh \(fh) `\(path)`")
            let pathFD = path.isEmpty ? nil : try open(path, from: root.fd, what: "fh \(fh)")
            let base = pathFD ?? root.fd
            let st = try Self.status(base, "fh \(fh) `\(path)`")
            let raw: Int32
            if isDirectory {
                guard st.st_mode & S_IFMT == S_IFDIR else { throw .unsupported("share `\(rootPath)`: `\(path)` (fh \(fh)) is no longer a directory") }
                raw = openat(base.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            } else {
                guard st.st_mode & S_IFMT == S_IFREG else { throw .unsupported("share `\(rootPath)`: `\(path)` (fh \(fh)) is no longer a regular file") }
                raw = Glibc.open(Linux.procPath(base), flags | O_CLOEXEC)
            }
            guard raw >= 0 else {
                throw .io(SystemCallError(call: "open", argument: "fh \(fh) `\(path)` of `\(rootPath)`", errno: .init(rawValue: errno)))
            }
            reopened.append((fh, FileHandle(fd: OwnedDescriptor(adopting: raw), slot: slot, isDirectory: isDirectory)))
        }
        inodes = InodeTable(root: root, restored: restored, nextID: nextNode, account: descriptors)
        handles = HandleTable(restored: reopened, nextID: nextHandle)
    }

    /// A restored inode or handle's room in the share's descriptor cap: a snapshot
    /// holding more than this VMM's shares may hold is refused.
    private func restoredSlot(_ what: String) throws(SnapshotError) -> DescriptorSlot {
        do { return try descriptors.take("restore \(what)") } catch {
            throw .unsupported("share `\(rootPath)`: \(error)")
        }
    }

    /// Where `fd` is, relative to the share's root `root` (the root itself is "").
    /// A file no longer linked anywhere, or outside the share, cannot be saved.
    private func relativePath(of fd: OwnedDescriptor, root: String, what: String) throws(SnapshotError) -> String {
        let st = try Self.status(fd, what)
        guard st.st_nlink > 0 || st.st_mode & S_IFMT == S_IFDIR else {
            throw .unsupported("share `\(rootPath)`: \(what) is a deleted file")
        }
        let path = try Self.hostPath(of: fd)
        if path == root { return "" }
        let prefix = root == "/" ? "/" : root + "/"
        guard path.hasPrefix(prefix) else { throw .unsupported("share `\(rootPath)`: \(what) is `\(path)`, outside the share") }
        let relative = String(path.dropFirst(prefix.count))
        guard relative.utf8.count <= Self.maximumSnapshotPathBytes else { throw .unsupported("share `\(rootPath)`: \(what): path too long") }
        return relative
    }

    /// Opens `path` (relative, '/'-separated) below `root` with `O_PATH | O_NOFOLLOW`
    /// per component: no empty, "." or ".." component, no symlink followed.
    private func open(_ path: String, from root: OwnedDescriptor, what: String) throws(SnapshotError) -> OwnedDescriptor {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        var current: OwnedDescriptor?
        for component in components {
            guard !component.isEmpty, component != ".", component != "..", !component.utf8.contains(0) else {
                throw .malformed("share `\(rootPath)`: \(what): path `\(path)` is not a plain relative path")
            }
            let parent = current ?? root
            let fd = String(component).withCString { openat(parent.rawValue, $0, Linux.O_PATH | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else {
                throw .io(SystemCallError(call: "openat", argument: "\(what) `\(path)` in `\(rootPath)`", errno: .init(rawValue: errno)))
            }
            current = OwnedDescriptor(adopting: fd)
        }
        guard let current else { throw .malformed("share `\(rootPath)`: \(what): empty path") }
        return current
    }

    private static func status(_ fd: OwnedDescriptor, _ what: String) throws(SnapshotError) -> stat {
        var st = stat()
        guard fstatat(fd.rawValue, "", &st, Linux.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else {
            throw .io(SystemCallError(call: "fstatat", argument: what, errno: .init(rawValue: errno)))
        }
        return st
    }

    /// The host path `fd` refers to (readlink of /proc/self/fd/N).
    private static func hostPath(of fd: OwnedDescriptor) throws(SnapshotError) -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = Glibc.readlink(Linux.procPath(fd), &buffer, buffer.count - 1)
        guard n > 0, n < buffer.count - 1 else {
            throw .io(SystemCallError(call: "readlink", argument: Linux.procPath(fd), errno: .init(rawValue: n < 0 ? errno : ENAMETOOLONG)))
        }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
