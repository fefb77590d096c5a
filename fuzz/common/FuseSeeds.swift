// FUSE messages as Linux sends them, for the fuse_request and fuse_server seeds.
// Node ids 1 (the root) and 2, 3 (the first LOOKUPs), file handle 1: the ids the
// server hands out first.

/// One request: fuse_in_header then the arguments.
func fuseMessage(_ opcode: UInt32, node: UInt64 = 1, unique: UInt64 = 1, uid: UInt32 = 0, gid: UInt32 = 0,
                 _ args: [UInt8] = []) -> [UInt8] {
    var m = LE()
    m.u32(UInt32(40 + args.count)); m.u32(opcode); m.u64(unique); m.u64(node)
    m.u32(uid); m.u32(gid); m.u32(4242); m.u16(0); m.u16(0)
    return m.bytes + args
}

func fuseArgs(_ body: (inout LE) -> Void) -> [UInt8] {
    var a = LE()
    body(&a)
    return a.bytes
}

/// fuse_init_in as Linux 6.1 sends it (64 bytes).
let fuseInit = fuseMessage(26, fuseArgs { a in a.u32(7); a.u32(38); a.u32(128 << 10); a.u32(0xffff_ffff); a.zeros(48) })

func fuseSeeds() -> [(name: String, bytes: [UInt8])] {
    let readIn = fuseArgs { a in a.u64(1); a.u64(0); a.u32(4096); a.u32(0); a.u64(0); a.u32(0); a.u32(0) }
    return [
        ("init", fuseInit),
        ("lookup", fuseMessage(1, fuseArgs { $0.cString("file") })),
        ("forget", fuseMessage(2, node: 2, fuseArgs { $0.u64(1) })),
        ("getattr", fuseMessage(3, fuseArgs { a in a.u32(0); a.u32(0); a.u64(0) })),
        ("setattr", fuseMessage(4, node: 2, fuseArgs { a in a.u32(1 | 8); a.u32(0); a.u64(0); a.u64(10); a.zeros(40); a.u32(0o644); a.zeros(12) })),
        ("readlink", fuseMessage(5, node: 2)),
        ("symlink", fuseMessage(6, fuseArgs { a in a.cString("ln"); a.cString("../target") })),
        ("mknod", fuseMessage(8, fuseArgs { a in a.u32(0o10644); a.u32(0); a.u32(0o22); a.u32(0); a.cString("fifo") })),
        ("mkdir", fuseMessage(9, fuseArgs { a in a.u32(0o755); a.u32(0o22); a.cString("d") })),
        ("unlink", fuseMessage(10, fuseArgs { $0.cString("file") })),
        ("rmdir", fuseMessage(11, fuseArgs { $0.cString("dir") })),
        ("rename", fuseMessage(12, fuseArgs { a in a.u64(1); a.cString("file"); a.cString("moved") })),
        ("link", fuseMessage(13, fuseArgs { a in a.u64(2); a.cString("hard") })),
        ("open", fuseMessage(14, node: 2, fuseArgs { a in a.u32(2); a.u32(0) })),
        ("read", fuseMessage(15, node: 2, readIn)),
        ("write", fuseMessage(16, node: 2, fuseArgs { a in a.u64(1); a.u64(0); a.u32(5); a.u32(0); a.u64(0); a.u32(0); a.u32(0); a.raw(Array("hello".utf8)) })),
        ("statfs", fuseMessage(17)),
        ("release", fuseMessage(18, node: 2, fuseArgs { a in a.u64(1); a.u32(0); a.u32(0); a.u64(0) })),
        ("fsync", fuseMessage(20, node: 2, fuseArgs { a in a.u64(1); a.u32(1); a.u32(0) })),
        ("setxattr", fuseMessage(21, fuseArgs { a in a.u32(3); a.u32(0); a.cString("user.x"); a.raw([1, 2, 3]) })),
        ("getxattr", fuseMessage(22, fuseArgs { a in a.u32(64); a.u32(0); a.cString("user.x") })),
        ("listxattr", fuseMessage(23, fuseArgs { a in a.u32(256); a.u32(0) })),
        ("removexattr", fuseMessage(24, fuseArgs { $0.cString("user.x") })),
        ("flush", fuseMessage(25, node: 2, fuseArgs { a in a.u64(1); a.u32(0); a.u32(0); a.u64(0) })),
        ("opendir", fuseMessage(27, fuseArgs { a in a.u32(0); a.u32(0) })),
        ("readdir", fuseMessage(28, readIn)),
        ("readdirplus", fuseMessage(44, readIn)),
        ("releasedir", fuseMessage(29, fuseArgs { a in a.u64(1); a.u32(0); a.u32(0); a.u64(0) })),
        ("access", fuseMessage(34, fuseArgs { a in a.u32(4); a.u32(0) })),
        ("create", fuseMessage(35, fuseArgs { a in a.u32(0o102); a.u32(0o100644); a.u32(0o22); a.u32(0); a.cString("new") })),
        ("interrupt", fuseMessage(36, fuseArgs { $0.u64(7) })),
        ("batch-forget", fuseMessage(42, fuseArgs { a in a.u32(2); a.u32(0); a.u64(2); a.u64(1); a.u64(3); a.u64(1) })),
        ("fallocate", fuseMessage(43, node: 2, fuseArgs { a in a.u64(1); a.u64(0); a.u64(4096); a.u32(0); a.u32(0) })),
        ("rename2", fuseMessage(45, fuseArgs { a in a.u64(1); a.u32(1); a.u32(0); a.cString("a"); a.cString("b") })),
        ("lseek", fuseMessage(46, node: 2, fuseArgs { a in a.u64(1); a.u64(0); a.u32(3); a.u32(0) })),
        ("syncfs", fuseMessage(50, fuseArgs { $0.u64(0) })),
        ("destroy", fuseMessage(38)),
        ("ioctl", fuseMessage(39, fuseArgs { $0.zeros(32) })),
        ("short", Array(fuseMessage(1).prefix(20))),
    ]
}
