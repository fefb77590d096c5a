#if canImport(Glibc)
import Glibc
#endif

/// The FUSE session: parses a request, checks the session state (INIT first),
/// dispatches to the file system and encodes the reply. Knows nothing of virtqueues.
///
/// Not thread-safe: the device calls it under its transport's lock.
public final class FuseServer {
    public let fileSystem: PassthroughFileSystem
    public let parser: FuseParser
    public var limits: FuseLimits { parser.limits }
    /// How long the guest may cache entries and attributes.
    public let timeout: FuseTimeout
    /// Receives a line for each refused (malformed or oversized) request.
    private let log: (String) -> Void

    /// Requests served, by opcode, and the bytes READ returned (diagnostics).
    private var requestCounts: [FuseOpcode: Int] = [:]
    private var bytesRead = 0

    /// "LOOKUP=12 GETATTR=3 READ=40 (1.2 MiB)...", most frequent first; nil before any request.
    public var statistics: String? {
        guard !requestCounts.isEmpty else { return nil }
        let total = requestCounts.values.reduce(0, +)
        let parts = requestCounts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.rawValue < $1.key.rawValue }
            .map { "\(FuseOpcode.names[$0.key.rawValue] ?? String($0.key.rawValue))=\($0.value)" }
        return "\(total) FUSE requests: " + parts.joined(separator: " ") + ", \(bytesRead) bytes read"
    }

    /// What INIT agreed on; nil before INIT and after DESTROY.
    public private(set) var session: Session?

    public struct Session: Sendable, Equatable {
        public var minor: UInt32
        public var flags: UInt32
        public var maxWrite: UInt32
    }

    /// The INIT flags this server implements (offered only if the guest offers them).
    public static let supportedFlags: UInt32 = FuseConstant.asyncRead | FuseConstant.atomicOTrunc
        | FuseConstant.bigWrites | FuseConstant.autoInvalData | FuseConstant.doReaddirplus
        | FuseConstant.readdirplusAuto | FuseConstant.parallelDirops | FuseConstant.maxPagesFlag

    public init(fileSystem: PassthroughFileSystem, limits: FuseLimits = FuseLimits(),
                timeout: FuseTimeout = FuseTimeout(seconds: 1), log: @escaping (String) -> Void = { _ in }) {
        self.fileSystem = fileSystem
        self.parser = FuseParser(limits: limits)
        self.timeout = timeout
        self.log = log
    }

    /// Ends the session (device reset): every inode but the root and every handle go.
    public func reset() {
        session = nil
        fileSystem.reset()
    }

    /// Snapshot state: the session INIT agreed on (none for a share not mounted yet)
    /// and, within a session, every inode and handle the guest holds.
    func captureState() throws(SnapshotError) -> [UInt8] {
        var writer = SnapshotWriter()
        guard let session else {
            writer.u8(0)
            return writer.bytes
        }
        writer.u8(1)
        writer.u32(session.minor)
        writer.u32(session.flags)
        writer.u32(session.maxWrite)
        try fileSystem.captureState(into: &writer)
        return writer.bytes
    }

    func restoreState(_ bytes: [UInt8]) throws(SnapshotError) {
        var reader = SnapshotReader(bytes, what: "virtio-fs `\(fileSystem.rootPath)` state")
        reset()
        if try reader.flag("session") {
            let minor = try reader.u32(), flags = try reader.u32(), maxWrite = try reader.u32()
            guard minor >= FuseConstant.oldestMinor, minor <= FuseConstant.kernelMinor, flags & ~Self.supportedFlags == 0,
                  maxWrite > 0, Int(maxWrite) <= limits.maxWrite else {
                throw .malformed("\(reader.what): session 7.\(minor) flags 0x\(String(flags, radix: 16)) max write \(maxWrite)")
            }
            try fileSystem.restoreState(from: &reader)
            session = Session(minor: minor, flags: flags, maxWrite: maxWrite)
        }
        try reader.finish()
    }

    /// Handles one message. Returns the reply (fuse_out_header and payload), or nil
    /// when nothing is to be written (FORGET, BATCH_FORGET, INTERRUPT, or a message
    /// without a readable header).
    public func handle(_ bytes: [UInt8], arrivedLength: Int) -> [UInt8]? {
        switch parser.parse(bytes, arrivedLength: arrivedLength) {
        case .unreadable(let reason):
            log("virtio-fs: dropped request: \(reason)")
            return nil
        case let .refused(header, error):
            log("virtio-fs: refused request \(header.unique): \(error)")
            let noReply = header.opcode == .forget || header.opcode == .batchForget || header.opcode == .interrupt
            return noReply ? nil : FuseWriter.error(unique: header.unique, error.errno)
        case .request(let request):
            return handle(request)
        }
    }

    public func handle(_ request: FuseRequest) -> [UInt8]? {
        let header = request.header
        requestCounts[header.opcode, default: 0] += 1
        var reply = FuseWriter()
        do throws(FuseError) {
            guard session != nil || request.operation.isInitialize else {
                throw FuseError(EIO, "\(header.opcode) before FUSE_INIT")
            }
            try dispatch(request, &reply)
        } catch {
            return request.operation.expectsReply ? FuseWriter.error(unique: header.unique, error.errno) : nil
        }
        return request.operation.expectsReply ? reply.finish(unique: header.unique) : nil
    }

    private func dispatch(_ request: FuseRequest, _ reply: inout FuseWriter) throws(FuseError) {
        let node = request.header.nodeid
        let caller = FuseCaller(uid: request.header.uid, gid: request.header.gid, pid: request.header.pid)
        let fs = fileSystem
        if request.operation.modifiesShare { try fs.requireWritable("\(request.header.opcode)") }
        switch request.operation {
        case let .initialize(major, minor, maxReadahead, flags):
            try initialize(major: major, minor: minor, maxReadahead: maxReadahead, flags: flags, &reply)
        case .destroy:
            reset()
        case .lookup(let name):
            do {
                entry(try fs.lookup(parent: node, name: name), &reply)
            } catch where error.errno == ENOENT {
                // A negative entry (node 0) the guest may cache for the timeout: a PATH
                // search repeated by the agent and then by the shell asks once.
                reply.entry(nodeid: 0, stat(), timeout: timeout)
            }
        case .forget(let count):
            fs.forget(node, count: count)
        case .batchForget(let entries):
            for one in entries { fs.forget(one.nodeid, count: one.count) }
        case .getattr(let fh):
            reply.attrOut(try fs.getattr(node, fh: fh), timeout: timeout)
        case .setattr(let change):
            reply.attrOut(try fs.setattr(node, change), timeout: timeout)
        case .readlink:
            reply.append(try fs.readlink(node))
        case let .symlink(name, target):
            entry(try fs.symlink(parent: node, name: name, target: target, caller: caller), &reply)
        case let .mknod(name, mode, rdev):
            entry(try fs.mknod(parent: node, name: name, mode: mode, rdev: rdev, caller: caller), &reply)
        case let .mkdir(name, mode):
            entry(try fs.mkdir(parent: node, name: name, mode: mode, caller: caller), &reply)
        case .unlink(let name):
            try fs.unlink(parent: node, name: name)
        case .rmdir(let name):
            try fs.rmdir(parent: node, name: name)
        case let .rename(from, toDirectory, to, flags):
            try fs.rename(parent: node, name: from, newParent: toDirectory, newName: to, flags: flags)
        case let .link(oldNode, name):
            entry(try fs.link(node: oldNode, parent: node, name: name), &reply)
        case .open(let flags):
            let fh = try fs.open(node, flags: flags)
            // The page cache survives the open only where the guest drops it on a change.
            let keepCache = (session?.flags ?? 0) & FuseConstant.autoInvalData != 0
            reply.openOut(fh: fh, flags: keepCache ? FuseConstant.fopenKeepCache : 0)
        case let .read(fh, offset, size):
            try fs.read(fh: fh, offset: offset, size: Int(size), into: &reply)
            bytesRead += reply.payloadCount
        case let .write(fh, offset, data):
            reply.u32(UInt32(try fs.write(fh: fh, offset: offset, data: data)))
            reply.u32(0)
        case .statfs:
            kstatfs(try fs.statfs(node), &reply)
        case .release(let fh):
            try fs.release(fh: fh, directory: false)
        case .releasedir(let fh):
            try fs.release(fh: fh, directory: true)
        case let .fsync(fh, dataOnly):
            try fs.fsync(fh: fh, dataOnly: dataOnly, directory: false)
        case let .fsyncdir(fh, dataOnly):
            try fs.fsync(fh: fh, dataOnly: dataOnly, directory: true)
        case .flush(let fh):
            try fs.flush(fh: fh)
        case let .setxattr(name, value, flags):
            try fs.setxattr(node, name: name, value: value, flags: flags)
        case let .getxattr(name, size):
            xattr(try fs.getxattr(node, name: name, size: min(Int(size), limits.maxXattrSize)), &reply)
        case .listxattr(let size):
            xattr(try fs.listxattr(node, size: min(Int(size), limits.maxXattrSize)), &reply)
        case .removexattr(let name):
            try fs.removexattr(node, name: name)
        case .opendir:
            reply.openOut(fh: try fs.opendir(node))
        case let .readdir(fh, offset, size, plus):
            try fs.readdir(fh: fh, offset: offset, size: Int(size), plus: plus, timeout: timeout, into: &reply)
        case .access(let mask):
            try fs.access(node, mask: mask, caller: caller)
        case let .create(name, flags, mode):
            let (created, fh) = try fs.create(parent: node, name: name, flags: flags, mode: mode, caller: caller)
            entry(created, &reply)
            reply.openOut(fh: fh)
        case .interrupt:
            break                                       // requests complete synchronously
        case let .lseek(fh, offset, whence):
            reply.u64(try fs.lseek(fh: fh, offset: offset, whence: whence))
        case let .fallocate(fh, offset, length, mode):
            try fs.fallocate(fh: fh, offset: offset, length: length, mode: mode)
        case .syncfs:
            try fs.syncfs()
        case .unsupported(let opcode):
            throw FuseError(ENOSYS, "\(opcode) is not implemented")
        }
    }

    /// FUSE_INIT: agrees on 7.min(guest, 38) and the flags both sides support.
    private func initialize(major: UInt32, minor: UInt32, maxReadahead: UInt32, flags: UInt32,
                            _ reply: inout FuseWriter) throws(FuseError) {
        guard major >= FuseConstant.kernelMajor else { throw FuseError(EPROTO, "FUSE_INIT: protocol \(major).\(minor)") }
        if major > FuseConstant.kernelMajor {
            // A newer major: answer with ours only; the kernel retries INIT with 7.x.
            reply.u32(FuseConstant.kernelMajor)
            reply.u32(FuseConstant.kernelMinor)
            reply.zeros(FuseConstant.initOutSize - 8)
            return
        }
        guard minor >= FuseConstant.oldestMinor else {
            throw FuseError(EPROTO, "FUSE_INIT: protocol 7.\(minor) predates virtio-fs (7.\(FuseConstant.oldestMinor))")
        }
        if session != nil { fileSystem.reset() }         // a new session from a rebooted guest
        let agreed = flags & Self.supportedFlags
        let maxWrite = UInt32(min(limits.maxWrite, Int(limits.maxPages) * 4096))
        session = Session(minor: min(minor, FuseConstant.kernelMinor), flags: agreed, maxWrite: maxWrite)
        reply.u32(FuseConstant.kernelMajor)
        reply.u32(min(minor, FuseConstant.kernelMinor))
        reply.u32(maxReadahead)
        reply.u32(agreed)
        reply.u16(64)                                   // max_background
        reply.u16(48)                                   // congestion_threshold
        reply.u32(maxWrite)
        reply.u32(1)                                    // time_gran: nanoseconds
        reply.u16(limits.maxPages)
        reply.u16(0)                                    // map_alignment: no DAX window
        reply.u32(0)                                    // flags2: FUSE_INIT_EXT is not offered
        reply.zeros(28)                                 // unused[7]
    }

    private func entry(_ entry: FuseEntry, _ reply: inout FuseWriter) {
        reply.entry(nodeid: entry.nodeid, entry.attributes, timeout: timeout)
    }

    private func xattr(_ result: FuseXattrReply, _ reply: inout FuseWriter) {
        switch result {
        case .size(let size):                           // struct fuse_getxattr_out
            reply.u32(UInt32(size))
            reply.u32(0)
        case .value(let value):
            reply.append(value)
        }
    }

    /// struct fuse_kstatfs (80 bytes).
    private func kstatfs(_ sv: statvfs, _ reply: inout FuseWriter) {
        reply.u64(UInt64(sv.f_blocks))
        reply.u64(UInt64(sv.f_bfree))
        reply.u64(UInt64(sv.f_bavail))
        reply.u64(UInt64(sv.f_files))
        reply.u64(UInt64(sv.f_ffree))
        reply.u32(UInt32(truncatingIfNeeded: sv.f_bsize))
        reply.u32(UInt32(truncatingIfNeeded: sv.f_namemax))
        reply.u32(UInt32(truncatingIfNeeded: sv.f_frsize))
        reply.zeros(4 + 24)                             // padding, spare[6]
    }
}

extension FuseOperation {
    var isInitialize: Bool {
        if case .initialize = self { return true }
        return false
    }
}
