#if canImport(Glibc)
import Glibc
#endif

/// Open files: OPEN, READ, WRITE, FLUSH, FSYNC, RELEASE, LSEEK, FALLOCATE.
extension PassthroughFileSystem {
    /// FUSE_OPEN: reopens the inode through `/proc/self/fd/N` with the guest's flags.
    /// Only regular files: a Linux guest opens device nodes and FIFOs on its own side
    /// and never sends OPEN for them, and opening one here could block the VMM (a
    /// FIFO) or reach a host device.
    public func open(_ nodeid: UInt64, flags: UInt32) throws(FuseError) -> UInt64 {
        let inode = try inodes.get(nodeid)
        guard inode.isRegular else {
            let code = inode.isDirectory ? EISDIR : inode.isSymlink ? ELOOP : ENXIO
            throw FuseError(code, "open `node \(nodeid)`: not a regular file")
        }
        if Int32(bitPattern: flags) & (O_ACCMODE | O_TRUNC) != O_RDONLY { try requireWritable("open `node \(nodeid)` for writing") }
        let slot = try descriptors.take("open `node \(nodeid)`")
        let fd = try fsCall("open", "node \(nodeid)") {
            Glibc.open(Linux.procPath(inode.fd), Self.hostOpenFlags(flags) | O_CLOEXEC)
        }
        return handles.insert(FileHandle(fd: OwnedDescriptor(adopting: fd), slot: slot, isDirectory: false))
    }

    /// FUSE_READ: up to `size` bytes at `offset`, appended to `reply` (short only at
    /// end of file).
    func read(fh: UInt64, offset: UInt64, size: Int, into reply: inout FuseWriter) throws(FuseError) {
        let handle = try handles.get(fh, directory: false)
        guard let start = Int(exactly: offset), start <= Int.max - size else {
            throw .invalid("pread `fh \(fh)`: offset \(offset) size \(size)")
        }
        var failure: Int32 = 0
        _ = reply.append(upTo: size) { buffer in
            var done = 0
            while done < buffer.count {
                let n = pread(handle.fd.rawValue, buffer.baseAddress! + done, buffer.count - done, start + done)
                if n > 0 { done += n; continue }
                if n == -1 && errno == EINTR { continue }
                if n == -1 { failure = errno }
                break
            }
            return failure == 0 || done > 0 ? done : -1
        }
        if failure != 0 && reply.payloadCount == 0 {
            throw FuseError(failure, "pread `fh \(fh)` at \(offset)")
        }
    }

    /// FUSE_WRITE: returns how many bytes were written.
    public func write(fh: UInt64, offset: UInt64, data: ArraySlice<UInt8>) throws(FuseError) -> Int {
        let handle = try handles.get(fh, directory: false)
        guard let start = Int(exactly: offset), start <= Int.max - data.count else {
            throw .invalid("pwrite `fh \(fh)`: offset \(offset) size \(data.count)")
        }
        var done = 0
        while done < data.count {
            let n = try fsCallSize("pwrite", "fh \(fh) at \(offset + UInt64(done))") {
                data.withUnsafeBytes { raw in pwrite(handle.fd.rawValue, raw.baseAddress! + done, raw.count - done, start + done) }
            }
            guard n > 0 else { break }
            done += n
        }
        return done
    }

    /// FUSE_FLUSH: nothing is buffered in the server; locks are not offered.
    public func flush(fh: UInt64) throws(FuseError) {
        _ = try handles.get(fh, directory: false)
    }

    /// FUSE_FSYNC / FUSE_FSYNCDIR.
    public func fsync(fh: UInt64, dataOnly: Bool, directory: Bool) throws(FuseError) {
        let handle = try handles.get(fh, directory: directory)
        try fsCall(dataOnly ? "fdatasync" : "fsync", "fh \(fh)") {
            dataOnly ? fdatasync(handle.fd.rawValue) : Glibc.fsync(handle.fd.rawValue)
        }
    }

    /// FUSE_SYNCFS (a guest sync(2) or syncfs(2)): syncs the filesystem holding the
    /// share's root (not other filesystems mounted beneath it on the host). syncfs(2)
    /// refuses `O_PATH` fds, so the root is opened for the call.
    public func syncfs() throws(FuseError) {
        let syncfs = Linux.syncfs
        let root = try inodes.get(FuseConstant.rootID)
        let fd = OwnedDescriptor(adopting: try fsCall("openat", "node 1/.") {
            openat(root.fd.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        })
        try fsCall("syncfs", rootPath) { syncfs(fd.rawValue) }
    }

    /// FUSE_RELEASE / FUSE_RELEASEDIR: closes the handle's fd.
    public func release(fh: UInt64, directory: Bool) throws(FuseError) {
        try handles.remove(fh, directory: directory)
    }

    /// FUSE_LSEEK (the guest sends SEEK_DATA and SEEK_HOLE; SET/CUR/END are accepted).
    public func lseek(fh: UInt64, offset: UInt64, whence: UInt32) throws(FuseError) -> UInt64 {
        let handle = try handles.get(fh, directory: false)
        guard whence <= UInt32(Linux.SEEK_HOLE) else { throw .invalid("lseek `fh \(fh)`: whence \(whence)") }
        var result: Int = -1
        while true {
            result = Glibc.lseek(handle.fd.rawValue, Int(truncatingIfNeeded: offset), Int32(whence))
            if result != -1 || errno != EINTR { break }
        }
        guard result >= 0 else { throw FuseError(errno, "lseek `fh \(fh)` to \(offset) whence \(whence)") }
        return UInt64(result)
    }

    /// FUSE_FALLOCATE with the guest's mode (KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE...).
    public func fallocate(fh: UInt64, offset: UInt64, length: UInt64, mode: UInt32) throws(FuseError) {
        let handle = try handles.get(fh, directory: false)
        let fallocate = Linux.fallocate
        guard let start = Int64(exactly: offset), let count = Int64(exactly: length) else {
            throw .invalid("fallocate `fh \(fh)`: offset \(offset) length \(length)")
        }
        try fsCall("fallocate", "fh \(fh) at \(offset) length \(length)") {
            fallocate(handle.fd.rawValue, Int32(bitPattern: mode), start, count)
        }
    }
}
