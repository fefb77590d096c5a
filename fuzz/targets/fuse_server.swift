// The FUSE server (Sources/VMM/Devices/Fs: FuseServer dispatch, PassthroughFileSystem)
// against a real share: a tmpfs, mounted nodev,nosuid in a private mount namespace
// (so device nodes a fuzzed MKNOD makes cannot be opened and writes are bounded),
// freshly populated for each input. The input is a sequence of FUSE messages, each
// as long as its header says (the last one cut at the end of the input), served
// after an INIT. Oracles: every reply is well-formed (length, unique, a negative
// errno with no payload), and nothing outside the share changes (a canary file and
// the share's parent directory stay as they were).
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

nonisolated(unsafe) var outer = ""
nonisolated(unsafe) var share = ""
nonisolated(unsafe) var outerMtime = timespec()
let canaryText = Array("outside the share\n".utf8)

func mountShare() {
    guard mount("fuzzshare", share, "tmpfs", UInt(MS_NODEV | MS_NOSUID), "size=8m,nr_inodes=4096,mode=0755") == 0 else {
        fuzzFailure("mount tmpfs on \(share): errno \(errno)")
    }
    func write(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { fuzzFailure("create \(path): errno \(errno)") }
        _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
    write(share + "/file", "hello, world\n")
    mkdir(share + "/dir", 0o755)
    write(share + "/dir/inner", "inner\n")
    symlink("/etc/passwd", share + "/abs")
    symlink("..", share + "/up")
    link(share + "/file", share + "/dir/hard")
}

func statOuter() -> timespec {
    var st = stat()
    guard lstat(outer, &st) == 0 else { fuzzFailure("lstat \(outer): errno \(errno)") }
    return st.st_mtim
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked {
        // A whole session: INIT (again), then a few requests; and each request alone.
        let session = fuseSeeds().filter { ["lookup", "open", "read", "write", "readdirplus", "create", "mkdir", "rename", "symlink", "setattr"].contains($0.name) }
        return [(name: "session", bytes: session.flatMap { $0.bytes })]
            + fuseSeeds().map { (name: $0.name, bytes: fuseMessage(1, fuseArgs { $0.cString("file") }) + $0.bytes) }
            + [(name: "escape", bytes: fuseMessage(1, fuseArgs { $0.cString("up") }) + fuseMessage(1, node: 2, fuseArgs { $0.cString("..") })
                + fuseMessage(12, fuseArgs { a in a.u64(1); a.cString("file"); a.cString("..") }))]
    }
    // A private mount namespace, so the tmpfs mounts stay ours.
    // unshare(2) is behind _GNU_SOURCE in Glibc's Swift module: look it up.
    typealias Unshare = @convention(c) (Int32) -> Int32
    guard let symbol = dlsym(nil, "unshare") else { fuzzFailure("no unshare in libc") }
    let unshare = unsafeBitCast(symbol, to: Unshare.self)
    let newNS: Int32 = 0x0002_0000, newUser: Int32 = 0x1000_0000   // CLONE_NEWNS, CLONE_NEWUSER
    guard unshare(newNS) == 0 || unshare(newUser | newNS) == 0 else {
        fuzzFailure("fuse_server needs a mount namespace (root, or unprivileged user namespaces): errno \(errno)")
    }
    guard mount("none", "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0 else { fuzzFailure("make / private: errno \(errno)") }
    outer = makeTemporaryDirectory("sm-fuzz-fs")
    guard mount("fuzzouter", outer, "tmpfs", UInt(MS_NODEV | MS_NOSUID), "size=1m,mode=0755") == 0 else {
        fuzzFailure("mount tmpfs on \(outer): errno \(errno)")
    }
    share = outer + "/share"
    mkdir(share, 0o755)
    let fd = open(outer + "/canary", O_WRONLY | O_CREAT, 0o644)
    _ = canaryText.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    outerMtime = statOuter()
    mountShare()
    // Leave no empty directory behind in the host's /tmp.
    atexit {
        umount2(share, Int32(MNT_DETACH))
        umount2(outer, Int32(MNT_DETACH))
        rmdir(outer)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size).bytes
    do {
        let fs: PassthroughFileSystem
        do { fs = try PassthroughFileSystem(root: share, budget: DescriptorBudget(limit: 64)) } catch {
            fuzzFailure("open the share: \(error)")
        }
        let server = FuseServer(fileSystem: fs)
        guard let reply = server.handle(fuseInit, arrivedLength: fuseInit.count), reply.count == 80 else { fuzzFailure("INIT failed") }
        var offset = 0
        var count = 0
        while offset < input.count && count < 64 {
            let rest = input.count - offset
            var length = rest
            if rest >= 4 {
                let declared = Int(input[offset]) | Int(input[offset + 1]) << 8 | Int(input[offset + 2]) << 16 | Int(input[offset + 3]) << 24
                length = min(max(declared, 1), rest)
            }
            let message = Array(input[offset..<offset + length])
            offset += length
            count += 1
            guard let reply = server.handle(message, arrivedLength: message.count) else { continue }
            checkReply(reply, to: message)
        }
        server.reset()
        guard fs.heldDescriptors == 0, fs.handleCount == 0, fs.inodeCount == 1 else {
            fuzzFailure("after reset: \(fs.heldDescriptors) fds, \(fs.handleCount) handles, \(fs.inodeCount) inodes")
        }
    }
    // Nothing escaped the share.
    let fd = open(outer + "/canary", O_RDONLY)
    var buffer = [UInt8](repeating: 0, count: 64)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    close(fd)
    guard n == canaryText.count, Array(buffer.prefix(n)) == canaryText else { fuzzFailure("the canary outside the share changed") }
    let now = statOuter()
    guard now.tv_sec == outerMtime.tv_sec, now.tv_nsec == outerMtime.tv_nsec else { fuzzFailure("the share's parent directory changed") }
    // A fresh share for the next input.
    guard umount2(share, Int32(MNT_DETACH)) == 0 else { fuzzFailure("umount \(share): errno \(errno)") }
    mountShare()
    return 0
}

func checkReply(_ reply: [UInt8], to message: [UInt8]) {
    func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }
    func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }
    guard reply.count >= 16, Int(u32(reply, 0)) == reply.count else { fuzzFailure("reply of \(reply.count) bytes says \(reply.count >= 4 ? u32(reply, 0) : 0)") }
    guard message.count >= 40, u64(reply, 8) == u64(message, 8) else { fuzzFailure("reply to a message without a header, or with another unique") }
    let error = Int32(bitPattern: u32(reply, 4))
    guard error <= 0, error > -4096 else { fuzzFailure("reply error \(error)") }
    guard error == 0 || reply.count == 16 else { fuzzFailure("error \(error) with a payload of \(reply.count - 16) bytes") }
}
