import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

/// All virtio-fs / FUSE suites nest here, so `swift test --filter FuseTests` runs them.
@Suite("FUSE and virtio-fs") enum FuseTests {}

/// A failed expectation in a helper, with the request and errno it got.
struct FuseTestFailure: Error, CustomStringConvertible {
    let description: String
}

/// Little-endian argument bytes, laid out as <linux/fuse.h> says.
struct FuseArgs {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    /// A NUL-terminated string.
    mutating func name(_ s: String) { bytes += Array(s.utf8) + [0] }
    mutating func raw(_ b: [UInt8]) { bytes += b }

    static func build(_ body: (inout FuseArgs) -> Void) -> [UInt8] {
        var args = FuseArgs()
        body(&args)
        return args.bytes
    }
}

/// A whole request: fuse_in_header then `args`; `length` overrides the header's len.
func fuseMessage(_ opcode: FuseOpcode, node: UInt64 = 1, unique: UInt64 = 1, uid: UInt32 = 0, gid: UInt32 = 0,
                 extensionWords: UInt16 = 0, length: UInt32? = nil, _ args: [UInt8] = []) -> [UInt8] {
    var header = FuseArgs()
    header.u32(length ?? UInt32(40 + args.count))
    header.u32(opcode.rawValue)
    header.u64(unique)
    header.u64(node)
    header.u32(uid)
    header.u32(gid)
    header.u32(4242)                    // pid
    header.u16(extensionWords)
    header.u16(0)
    return header.bytes + args
}

/// fuse_init_in as Linux 6.1 sends it (64 bytes).
func initArgs(major: UInt32 = 7, minor: UInt32 = 38, flags: UInt32 = 0xffff_ffff) -> [UInt8] {
    FuseArgs.build { a in
        a.u32(major); a.u32(minor); a.u32(128 << 10); a.u32(flags); a.u32(0); a.zeros(44)
    }
}

/// A decoded reply: fuse_out_header and payload.
struct FuseTestReply {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) {
        precondition(bytes.count >= 16, "a reply has a header")
        self.bytes = bytes
    }

    var length: UInt32 { u32(0) }
    var error: Int32 { -Int32(bitPattern: u32(4)) }   // positive errno, 0 on success
    var unique: UInt64 { u64(8) }
    var payload: [UInt8] { Array(bytes[16...]) }

    func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
    func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
    /// Payload-relative reads.
    func p32(_ at: Int) -> UInt32 { u32(16 + at) }
    func p64(_ at: Int) -> UInt64 { u64(16 + at) }
    func attr(at offset: Int) -> FuseTestAttr { FuseTestAttr(self, 16 + offset) }
}

/// struct fuse_attr, decoded.
struct FuseTestAttr {
    var ino, size, blocks, atime, mtime: UInt64
    var atimensec, mtimensec, mode, nlink, uid, gid, rdev: UInt32

    init(_ r: FuseTestReply, _ at: Int) {
        ino = r.u64(at); size = r.u64(at + 8); blocks = r.u64(at + 16)
        atime = r.u64(at + 24); mtime = r.u64(at + 32)
        atimensec = r.u32(at + 48); mtimensec = r.u32(at + 52)
        mode = r.u32(at + 60); nlink = r.u32(at + 64); uid = r.u32(at + 68); gid = r.u32(at + 72); rdev = r.u32(at + 76)
    }

    var type: UInt32 { mode & UInt32(S_IFMT) }
}

/// A FUSE entry reply (fuse_entry_out).
struct FuseTestEntry {
    var nodeid: UInt64
    var attr: FuseTestAttr
}

/// A temporary host directory served by a FuseServer, with a sibling file outside
/// the share (`secret`) that no request may reach. Removed when released.
final class FuseTestShare {
    let top: String
    let path: String
    let secretPath: String
    let server: FuseServer
    private var nextUnique: UInt64 = 100

    /// Needs root, as the server does (it chowns new files to the caller): FAILS with
    /// the reason otherwise, never skips.
    init(initialize: Bool = true, readOnly: Bool = false, budget: DescriptorBudget = DescriptorBudget(limit: 1 << 16),
         shareLimit: Int? = nil, prepare: (String) throws -> Void = { _ in }) throws {
        try #require(getuid() == 0, "the virtio-fs server acts for the guest's root: run the tests as root")
        var template = Array("/tmp/sm-runc-fuse-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FuseTestFailure(description: "mkdtemp failed: errno \(Glibc.errno)")
        }
        top = String(cString: made)
        path = top + "/share"
        secretPath = top + "/secret"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        try Data("outside the share\n".utf8).write(to: URL(fileURLWithPath: secretPath))
        try prepare(path)
        let fs = try PassthroughFileSystem(root: path, readOnly: readOnly, budget: budget, shareLimit: shareLimit)
        server = FuseServer(fileSystem: fs)
        if initialize {
            let reply = send(.initialize, initArgs())
            guard reply?.error == 0 else { throw FuseTestFailure(description: "FUSE_INIT failed: \(reply?.error ?? -1)") }
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: top) }

    var fileSystem: PassthroughFileSystem { server.fileSystem }

    /// Host path of `relative` inside the share.
    func host(_ relative: String) -> String { path + "/" + relative }

    func writeHost(_ relative: String, _ contents: String) throws {
        try Data(contents.utf8).write(to: URL(fileURLWithPath: host(relative)))
    }

    func readHost(_ relative: String) -> String? {
        FileManager.default.contents(atPath: host(relative)).map { String(decoding: $0, as: UTF8.self) }
    }

    func lstatHost(_ relative: String) -> stat? {
        var st = stat()
        return lstat(host(relative), &st) == 0 ? st : nil
    }

    // MARK: - requests

    /// Sends one request; nil when the server sends no reply.
    @discardableResult
    func send(_ opcode: FuseOpcode, node: UInt64 = 1, uid: UInt32 = 0, gid: UInt32 = 0, _ args: [UInt8] = []) -> FuseTestReply? {
        nextUnique += 1
        let message = fuseMessage(opcode, node: node, unique: nextUnique, uid: uid, gid: gid, args)
        guard let reply = server.handle(message, arrivedLength: message.count) else { return nil }
        precondition(reply.count >= 16 && FuseTestReply(reply).unique == nextUnique && Int(FuseTestReply(reply).length) == reply.count)
        return FuseTestReply(reply)
    }

    /// Sends and requires success.
    func ok(_ opcode: FuseOpcode, node: UInt64 = 1, uid: UInt32 = 0, gid: UInt32 = 0, _ args: [UInt8] = []) throws -> FuseTestReply {
        guard let reply = send(opcode, node: node, uid: uid, gid: gid, args) else {
            throw FuseTestFailure(description: "\(opcode): no reply")
        }
        guard reply.error == 0 else {
            throw FuseTestFailure(description: "\(opcode) on node \(node): \(String(cString: strerror(reply.error)))")
        }
        return reply
    }

    /// The errno a request fails with (0 on success).
    func errno(_ opcode: FuseOpcode, node: UInt64 = 1, _ args: [UInt8] = []) -> Int32? {
        send(opcode, node: node, args)?.error
    }

    func entry(_ reply: FuseTestReply) -> FuseTestEntry {
        FuseTestEntry(nodeid: reply.p64(0), attr: reply.attr(at: 40))
    }

    func lookup(_ name: String, in parent: UInt64 = 1) throws -> FuseTestEntry {
        entry(try ok(.lookup, node: parent, FuseArgs.build { $0.name(name) }))
    }

    /// The errno a LOOKUP gets; a negative entry (node 0, which the kernel caches for
    /// its timeout) is ENOENT, as the kernel takes it.
    func lookupError(_ name: String, in parent: UInt64 = 1) -> Int32? {
        guard let reply = send(.lookup, node: parent, FuseArgs.build { $0.name(name) }) else { return nil }
        if reply.error == 0 && reply.bytes.count >= 16 + 8 && reply.p64(0) == 0 { return ENOENT }
        return reply.error
    }

    func getattr(_ node: UInt64) throws -> FuseTestAttr {
        try ok(.getattr, node: node, FuseArgs.build { $0.zeros(16) }).attr(at: 16)
    }

    /// FUSE_CREATE; returns the entry and fh.
    func create(_ name: String, in parent: UInt64 = 1, flags: Int32 = O_RDWR, mode: UInt32 = 0o644,
                uid: UInt32 = 0, gid: UInt32 = 0) throws -> (FuseTestEntry, UInt64) {
        let reply = try ok(.create, node: parent, uid: uid, gid: gid, FuseArgs.build { a in
            a.u32(UInt32(bitPattern: flags | O_CREAT)); a.u32(UInt32(S_IFREG) | mode); a.u32(0o022); a.u32(0); a.name(name)
        })
        return (entry(reply), reply.p64(128))
    }

    func open(_ node: UInt64, flags: Int32 = O_RDWR) throws -> UInt64 {
        try ok(.open, node: node, FuseArgs.build { $0.u32(UInt32(bitPattern: flags)); $0.u32(0) }).p64(0)
    }

    func openError(_ node: UInt64, flags: Int32 = O_RDONLY) -> Int32? {
        errno(.open, node: node, FuseArgs.build { $0.u32(UInt32(bitPattern: flags)); $0.u32(0) })
    }

    func write(_ node: UInt64, fh: UInt64, offset: UInt64 = 0, _ data: [UInt8]) throws -> UInt32 {
        try ok(.write, node: node, FuseArgs.build { a in
            a.u64(fh); a.u64(offset); a.u32(UInt32(data.count)); a.u32(0); a.u64(0); a.u32(0); a.u32(0); a.raw(data)
        }).p32(0)
    }

    func read(_ node: UInt64, fh: UInt64, offset: UInt64 = 0, size: UInt32 = 4096) throws -> [UInt8] {
        try ok(.read, node: node, readArgs(fh: fh, offset: offset, size: size)).payload
    }

    func readArgs(fh: UInt64, offset: UInt64 = 0, size: UInt32) -> [UInt8] {
        FuseArgs.build { a in a.u64(fh); a.u64(offset); a.u32(size); a.u32(0); a.u64(0); a.u32(0); a.u32(0) }
    }

    func release(_ node: UInt64, fh: UInt64, directory: Bool = false) -> Int32? {
        errno(directory ? .releasedir : .release, node: node, FuseArgs.build { a in a.u64(fh); a.u32(0); a.u32(0); a.u64(0) })
    }

    func opendir(_ node: UInt64) throws -> UInt64 {
        try ok(.opendir, node: node, FuseArgs.build { $0.u32(UInt32(bitPattern: O_RDONLY)); $0.u32(0) }).p64(0)
    }

    /// Every entry of a directory by READDIR (or READDIRPLUS), following `off`
    /// cookies `size` bytes at a time.
    func list(_ node: UInt64, size: UInt32 = 4096, plus: Bool = false) throws -> [(name: String, entry: FuseTestEntry?)] {
        let fh = try opendir(node)
        defer { _ = release(node, fh: fh, directory: true) }
        var names: [(String, FuseTestEntry?)] = []
        var offset: UInt64 = 0
        for _ in 0..<10_000 {
            let reply = try ok(plus ? .readdirplus : .readdir, node: node, readArgs(fh: fh, offset: offset, size: size))
            let payload = reply.payload
            if payload.isEmpty { return names }
            var at = 0
            while at < payload.count {
                var entry: FuseTestEntry?
                if plus {
                    entry = FuseTestEntry(nodeid: reply.p64(at), attr: reply.attr(at: at + 40))
                    at += 128
                }
                let off = reply.p64(at + 8), length = Int(reply.p32(at + 16))
                names.append((String(decoding: payload[(at + 24)..<(at + 24 + length)], as: UTF8.self), entry))
                offset = off
                at += (24 + length + 7) & ~7
            }
        }
        throw FuseTestFailure(description: "READDIR never ended")
    }

    func mkdir(_ name: String, in parent: UInt64 = 1, mode: UInt32 = 0o755, uid: UInt32 = 0, gid: UInt32 = 0) throws -> FuseTestEntry {
        entry(try ok(.mkdir, node: parent, uid: uid, gid: gid, FuseArgs.build { a in a.u32(mode); a.u32(0o022); a.name(name) }))
    }

    func symlink(_ name: String, to target: String, in parent: UInt64 = 1) throws -> FuseTestEntry {
        entry(try ok(.symlink, node: parent, FuseArgs.build { a in a.name(name); a.name(target) }))
    }

    func readlink(_ node: UInt64) throws -> String {
        String(decoding: try ok(.readlink, node: node).payload, as: UTF8.self)
    }

    func forget(_ node: UInt64, _ count: UInt64) {
        #expect(send(.forget, node: node, FuseArgs.build { $0.u64(count) }) == nil)
    }

    /// fuse_setattr_in with `valid` and the given fields.
    func setattr(_ node: UInt64, valid: UInt32, fh: UInt64 = 0, size: UInt64 = 0, atime: (UInt64, UInt32) = (0, 0),
                 mtime: (UInt64, UInt32) = (0, 0), mode: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0) throws -> FuseTestAttr {
        try ok(.setattr, node: node, FuseArgs.build { a in
            a.u32(valid); a.u32(0); a.u64(fh); a.u64(size); a.u64(0)
            a.u64(atime.0); a.u64(mtime.0); a.u64(0)
            a.u32(atime.1); a.u32(mtime.1); a.u32(0)
            a.u32(mode); a.u32(0); a.u32(uid); a.u32(gid); a.u32(0)
        }).attr(at: 16)
    }
}
