#if canImport(Glibc)
import Glibc
#endif

/// Directories: OPENDIR, READDIR, READDIRPLUS, FSYNCDIR (RELEASEDIR is `release`).
extension PassthroughFileSystem {
    /// FUSE_OPENDIR: `openat(inode, ".")` opens the very directory the `O_PATH` fd
    /// holds, even if the host has since renamed it or put a symlink in its place.
    public func opendir(_ nodeid: UInt64) throws(FuseError) -> UInt64 {
        let inode = try directory(nodeid)
        let slot = try descriptors.take("opendir `node \(nodeid)`")
        let fd = try fsCall("openat", "node \(nodeid)/.") {
            openat(inode.fd.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        return handles.insert(FileHandle(fd: OwnedDescriptor(adopting: fd), slot: slot, isDirectory: true))
    }

    /// FUSE_READDIR / FUSE_READDIRPLUS: entries from the directory position `offset`
    /// (a cookie from a previous entry's `off`), as many as fit in `size` bytes.
    /// READDIRPLUS also looks each entry up (one reference each, except "." and "..",
    /// which get the empty entry the guest skips); an entry that does not fit is
    /// neither sent nor looked up.
    func readdir(fh: UInt64, offset: UInt64, size: Int, plus: Bool, timeout: FuseTimeout,
                 into reply: inout FuseWriter) throws(FuseError) {
        let handle = try handles.get(fh, directory: true)
        let getdents64 = Linux.getdents64
        let fd = handle.fd.rawValue
        try fsCall("lseek", "fh \(fh) to \(offset)") {
            Glibc.lseek(fd, Int(truncatingIfNeeded: offset), SEEK_SET) == -1 ? -1 : 0
        }
        let start = reply.payloadCount
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        reading: while true {
            let count = buffer.withUnsafeMutableBytes { getdents64(fd, $0.baseAddress, $0.count) }
            if count == -1 && errno == EINTR { continue }
            if count == -1 {
                if reply.payloadCount > start { break }                  // send what we have
                throw FuseError(errno, "getdents64 `fh \(fh)`")
            }
            if count == 0 { break }
            var position = 0
            while position + 19 < count {
                // struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16, d_type u8, d_name.
                var record = FuseReader(buffer, from: position, to: count, what: "getdents64")
                guard let ino = try? record.u64(), let next = try? record.u64(), let length = try? record.u16(),
                      length > 19, position + Int(length) <= count else { break reading }
                let type = buffer[position + 18]
                let nameBytes = buffer[(position + 19)..<(position + Int(length))].prefix { $0 != 0 }
                let needed = align8((plus ? FuseConstant.entryOutSize : 0) + FuseConstant.direntHeaderSize + nameBytes.count)
                guard reply.payloadCount - start + needed <= size else { break reading }
                if plus {
                    if let name = FuseName(nameBytes), !name.isDot, !name.isDotDot,
                       let entry = try? reference(in: handle.fd, name, "fh \(fh)/\(name)") {
                        reply.entry(nodeid: entry.nodeid, entry.attributes, timeout: timeout)
                    } else {
                        reply.entry(nodeid: 0, stat(), timeout: FuseTimeout(seconds: 0))
                    }
                }
                reply.u64(ino)
                reply.u64(next)
                reply.u32(UInt32(nameBytes.count))
                reply.u32(UInt32(type))
                reply.append(nameBytes)
                reply.alignPayload()
                position += Int(length)
            }
        }
    }

    private func align8(_ n: Int) -> Int { (n + 7) & ~7 }
}
